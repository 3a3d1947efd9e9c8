"""What contract-svc tells `smartid run` about itself."""

from smartid_events.service import ServiceSpec

SPEC = ServiceSpec(
    name="contract",
    env_prefix="CONTRACT_",
    http_port=8001,
    database="smartid_contract",
    app_factory="contract_svc.main:create_app",
    worker="contract_svc.worker:main",
)
