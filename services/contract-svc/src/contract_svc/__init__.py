"""SmartID contract service."""
