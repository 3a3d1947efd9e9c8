"""SmartID published event language and the plumbing every service shares."""
