"""Sealing personal fields with the contract's own key, so destroying the key erases them."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import Any, Protocol
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import JSONTranscoder, StoredEvent, Transcoder, Transcoding
from eventsourcing.utils import resolve_topic

from contract_svc.domain import ERASED
from contract_svc.keys import KeyStore
from smartid_events.bulkload import UnreadableSnapshotError
from smartid_events.correlation import CorrelatingMapper

SEALED = "_sealed_"
NONCE_BYTES = 12


class Addressed(Protocol):
    """What `prefetch` reads of a stored event."""

    @property
    def originator_id(self) -> UUID | str: ...

    @property
    def topic(self) -> str: ...


class SnapshotErasedError(UnreadableSnapshotError):
    """A sealed snapshot whose key is gone: rebuild the aggregate from its events instead."""


_FIELDS: dict[type[Any], tuple[str, ...]] = {}
_TOPIC_FIELDS: dict[str, tuple[str, ...]] = {}


def personal_fields_of(cls: type[Any]) -> tuple[str, ...]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(getattr(cls, "personal_fields", ()))
    return fields


def _personal_fields_of_topic(topic: str) -> tuple[str, ...]:
    fields = _TOPIC_FIELDS.get(topic)
    if fields is None:
        fields = _TOPIC_FIELDS[topic] = personal_fields_of(resolve_topic(topic))
    return fields


class OrjsonDecoding(Transcoder):
    """eventsourcing's `JSONTranscoder`, decoding with orjson instead of `json` + object_hook.

    Encodes exactly as the wrapped transcoder. Decodes to the same values: JSON parsed by
    orjson, then every `{"_type_": name, "_data_": data}` object (innermost first, as the
    object_hook sees them) decoded by the transcoding registered under `name`. Anything orjson
    refuses or a transcoding fails on goes through the wrapped transcoder, errors and all.
    """

    def __init__(self, transcoder: JSONTranscoder) -> None:
        self.wrapped = transcoder

    def register(self, transcoding: Transcoding) -> None:
        self.wrapped.register(transcoding)

    def encode(self, obj: Any) -> bytes:
        return self.wrapped.encode(obj)

    def decode(self, data: bytes) -> Any:
        try:
            return _revive(orjson.loads(data), self.wrapped.names)
        except Exception:
            return self.wrapped.decode(data)


def _revive(value: Any, names: dict[str, Transcoding]) -> Any:
    if type(value) is dict:
        for k, v in value.items():
            if type(v) is dict:
                if len(v) == 2 and "_type_" in v and type(data := v.get("_data_")) is str:
                    value[k] = names[v["_type_"]].decode(data)  # moments, dates: no nesting
                else:
                    value[k] = _revive(v, names)
            elif type(v) is list:
                value[k] = _revive(v, names)
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return names[value["_type_"]].decode(value["_data_"])
        return value
    if type(value) is list:
        return [_revive(v, names) if type(v) is dict or type(v) is list else v for v in value]
    return value


class PersonalDataMapper(CorrelatingMapper[UUID]):
    """Encrypts the fields each event class names in `personal_fields` with its contract's key.

    After the key is destroyed events read back with `[erased]` in those fields; history is
    never rewritten. A sealed value is bound to its event (originator, version, field) so it
    cannot be moved to another event.
    """

    def __init__(self, transcoder: Transcoder, key_store: KeyStore) -> None:
        if type(transcoder) is JSONTranscoder:
            transcoder = OrjsonDecoding(transcoder)
        super().__init__(transcoder=transcoder)
        self.key_store = key_store

    def prefetch(self, stored_events: Iterable[Addressed]) -> None:
        """Fetch the keys these events will need in one query (the group committer's loads).

        Stored events, or anything with their `originator_id` and `topic` (log rows).
        """
        ids = {s.originator_id for s in stored_events if _personal_fields_of_topic(s.topic)}
        if ids:
            self.key_store.prefetch(ids)  # type: ignore[arg-type]

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        fields = personal_fields_of(type(domain_event))
        if not fields:
            return super().to_stored_event(domain_event)
        originator_id = domain_event.originator_id
        key = self.key_store.key_for(originator_id)
        state = dict(vars(domain_event))
        for name in fields:
            value = state.get(name)
            if value is None:
                continue
            if key is None:
                # The contract was erased: a snapshot's state was rebuilt from erased events and
                # holds only placeholders; any other field becomes one, never plaintext.
                if not isinstance(domain_event, Snapshot):
                    state[name] = ERASED
            else:
                state[name] = self._seal(key, domain_event, name, value)
        sealed_event = object.__new__(type(domain_event))
        object.__setattr__(sealed_event, "__dict__", state)
        return super().to_stored_event(sealed_event)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        domain_event = super().to_domain_event(stored_event)
        fields = personal_fields_of(type(domain_event))
        if not fields:
            return domain_event
        state = domain_event.__dict__
        cipher: AESGCM | None = None  # one per event, not per field
        for name in fields:
            value = state.get(name)
            if not (isinstance(value, dict) and SEALED in value):
                continue
            if cipher is None:
                key = self.key_store.existing_key(domain_event.originator_id)
                if key is None:
                    if isinstance(domain_event, Snapshot):
                        raise SnapshotErasedError(str(domain_event.originator_id))
                    state[name] = ERASED
                    continue
                cipher = AESGCM(key)
            state[name] = self._open(cipher, domain_event, name, value[SEALED])
        return domain_event

    def _seal(self, key: bytes, event: DomainEventProtocol[UUID], name: str, value: Any) -> Any:
        nonce = os.urandom(NONCE_BYTES)
        plaintext = self.transcoder.encode({"v": value})
        ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(event, name))
        return {SEALED: base64.b64encode(nonce + ciphertext).decode()}

    def _open(
        self, cipher: AESGCM, event: DomainEventProtocol[UUID], name: str, sealed: str
    ) -> Any:
        raw = base64.b64decode(sealed)
        plaintext = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(event, name))
        return self.transcoder.decode(plaintext)["v"]


def _aad(event: DomainEventProtocol[UUID], name: str) -> bytes:
    return f"{event.originator_id}:{event.originator_version}:{name}".encode()
