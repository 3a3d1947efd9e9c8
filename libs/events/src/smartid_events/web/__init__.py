"""What every service's HTTP API shares: problems, auth wiring, health, metrics, request logs."""

from smartid_events.web.app import create_service_app
from smartid_events.web.health import ReadinessCheck, nats_check, postgres_check
from smartid_events.web.lean import LeanRoute
from smartid_events.web.problems import ErrorTable, problem_response

__all__ = [
    "ErrorTable",
    "LeanRoute",
    "ReadinessCheck",
    "create_service_app",
    "nats_check",
    "postgres_check",
    "problem_response",
]
