"""The benchmark harness: registry, context, servers, HTTP load generator and report."""

from bench.harness.context import Context
from bench.harness.registry import Figure, benchmark

__all__ = ["Context", "Figure", "benchmark"]
