"""What `smartid run` needs to know of billing-svc."""

from __future__ import annotations

from smartid_events.service import ServiceSpec

SPEC = ServiceSpec(
    name="billing",
    env_prefix="BILLING_",
    http_port=8002,
    database="smartid_billing",
    app_factory="billing_svc.main:create_app",
    worker="billing_svc.worker:main",
    consumes=("contract",),
)
