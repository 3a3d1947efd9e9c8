"""The AsyncAPI 3 document of every stream, subject and message, generated from the registry."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from smartid_events.envelope import (
    HEADER_CORRELATION_ID,
    HEADER_MSG_ID,
    HEADER_POSITION,
    HEADER_TYPE,
    PARTITIONS,
    stream_name,
)
from smartid_events.registry import Registry

CLOUDEVENT_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type", "subject", "time", "data", "position"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "description": "Unique event id, also `Nats-Msg-Id`."},
        "source": {"type": "string"},
        "type": {"type": "string", "description": "`smartid.<service>.<Name>.v<N>`"},
        "subject": {"type": "string", "description": "The contract id, or `_service`."},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "position": {"type": "integer", "description": "Notification id in the producer's log."},
        "correlationid": {"type": "string"},
        "data": {"type": "object"},
    },
}

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [HEADER_MSG_ID, HEADER_POSITION, HEADER_TYPE],
    "properties": {
        HEADER_MSG_ID: {"type": "string", "description": "The event id: JetStream de-duplication."},
        HEADER_POSITION: {"type": "string", "description": "The producer's notification id."},
        HEADER_TYPE: {"type": "string"},
        HEADER_CORRELATION_ID: {"type": "string"},
    },
}


def message_key(service: str, name: str, version: int) -> str:
    return f"{service}.{name}.v{version}"


def build_asyncapi(registry: Registry) -> dict[str, Any]:
    """One channel per service and event name; one message per registered version."""
    by_channel: dict[tuple[str, str], list[str]] = defaultdict(list)
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEvent": CLOUDEVENT_ENVELOPE}
    for spec in registry:
        key = message_key(spec.service, spec.name, spec.version)
        by_channel[(spec.service, spec.name)].append(key)
        schemas[key] = spec.full_schema()
        messages[key] = {
            "name": spec.type,
            "title": spec.type,
            "summary": spec.description,
            "contentType": "application/cloudevents+json",
            "headers": HEADERS_SCHEMA,
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEvent"},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": spec.type},
                            "data": {"$ref": f"#/components/schemas/{key}"},
                        },
                    },
                ]
            },
        }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for (service, name), keys in sorted(by_channel.items()):
        channel_id = f"{service}.{name}"
        channels[channel_id] = {
            "address": f"smartid.{service}.{{partition}}.{{contract_id}}.{name}",
            "description": f"Stream {stream_name(service)}; {PARTITIONS} partitions.",
            "parameters": {
                "partition": {"description": "`p00`…`p15`: crc32(contract_id) % 16."},
                "contract_id": {"description": "The contract id, or `_service`."},
            },
            "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in keys},
        }
        operations[f"publish.{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{k}"} for k in keys],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SmartID events",
            "version": "1.0.0",
            "description": "Every published SmartID event; one JetStream stream per service.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
