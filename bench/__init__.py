"""Benchmarks that print SmartID's figures next to raw baselines measured in the same run."""
