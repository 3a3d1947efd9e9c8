"""Test support shared by every service: real servers, builders, waiting helpers."""
