"""SmartID billing service."""
