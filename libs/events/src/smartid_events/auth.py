"""Bearer tokens with scopes: minting, verifying, and the FastAPI dependency `require(scope)`.

Tokens are JWTs signed with HS256 and the shared secret (`SMARTID_JWT_SECRET`). Claims: `sub`,
`role` ("operator" | "contractor"), `scopes` (a list), `tenant` (the contractor's id; required for
contractors), `iat`, `exp`. A missing, invalid or expired token gets 401 with
`WWW-Authenticate: Bearer`; a missing scope gets 403. Whether a principal may see one contract is
the service's check (`Principal.can_access`): answer 404 when it may not, so that a contractor
cannot learn which other contracts exist.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ALGORITHM = "HS256"
Role = Literal["operator", "contractor"]
ROLES: tuple[Role, ...] = ("operator", "contractor")

SCOPES = (
    "contracts:read",
    "contracts:write",
    "contracts:operate",
    "billing:read",
    "billing:write",
    "billing:operate",
    "notices:read",
    "notices:write",
    "idp:read",
    "events:read",
)


class InvalidTokenError(Exception):
    """The token is missing, malformed, badly signed, expired, or its claims make no sense."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, with what scopes; `tenant` is the contractor's id for contractors."""

    sub: str
    role: Role
    scopes: frozenset[str]
    tenant: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def can_access(self, tenant_id: object) -> bool:
        """Operators see every contractor; a contractor only itself."""
        if self.is_operator:
            return True
        return self.tenant is not None and self.tenant == str(tenant_id)


def mint_token(
    secret: str,
    *,
    sub: str,
    role: Role,
    scopes: Iterable[str],
    tenant: str | None = None,
    ttl: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> str:
    scope_list = sorted(set(scopes))
    unknown = set(scope_list) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role == "contractor" and not tenant:
        raise ValueError("a contractor's token needs its tenant (the contractor's id)")
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "role": role,
        "scopes": scope_list,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Principal:
    return _verify(secret, token)[0]


def _verify(secret: str, token: str) -> tuple[Principal, float]:
    """The token's principal and its `exp` (seconds since the epoch)."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as e:
        raise InvalidTokenError(str(e)) from None
    role = claims.get("role")
    scopes = claims.get("scopes", [])
    tenant = claims.get("tenant")
    if role not in ROLES:
        raise InvalidTokenError("role must be operator or contractor")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidTokenError("scopes must be a list of strings")
    if tenant is not None and not isinstance(tenant, str):
        raise InvalidTokenError("tenant must be a string")
    if role == "contractor" and not tenant:
        raise InvalidTokenError("a contractor's token needs a tenant")
    principal = Principal(
        sub=str(claims["sub"]), role=role, scopes=frozenset(scopes), tenant=tenant
    )
    return principal, float(claims["exp"])


VERIFIED_TOKENS_KEPT = 4096


class TokenVerifier:
    """What `create_service_app` puts on `app.state.token_verifier`.

    Remembers the last `cache_size` tokens it verified, keyed by the token string, until their
    `exp`: a token's signature and claims cannot change, and one that was valid stays valid
    until it expires (`nbf` and `iat` only recede). Verifying with PyJWT costs more than the
    rest of a command's request handling; a client sends the same token for an hour. Tokens
    that fail are not remembered.
    """

    def __init__(
        self,
        secret: str,
        *,
        cache_size: int = VERIFIED_TOKENS_KEPT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, token: str) -> Principal:
        now = self._clock()
        with self._lock:
            known = self._verified.get(token)
            if known is not None:
                if now < known[1]:  # PyJWT: expired when exp <= now
                    self._verified.move_to_end(token)
                    return known[0]
                del self._verified[token]
        principal, expires = _verify(self.secret, token)
        if self._cache_size > 0:
            with self._lock:
                self._verified[token] = (principal, expires)
                self._verified.move_to_end(token)
                while len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)
        return principal


class _Bearer(HTTPBearer):
    """`HTTPBearer(auto_error=False)`, documented the same, without validating its own result
    model on every request: the scheme and the credentials are plain strings from a header."""

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        credentials = credentials.strip()  # as FastAPI's get_authorization_scheme_param
        if not (scheme and credentials) or scheme.lower() != "bearer":
            return None
        return HTTPAuthorizationCredentials.model_construct(scheme=scheme, credentials=credentials)


_bearer = _Bearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer realm="smartid", error="invalid_token"'},
    )


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's `Principal`, which must hold `scope`."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope: {scope}")

    # A coroutine: FastAPI would run a plain function in its thread pool, a hand-off per
    # request that costs more than checking the token.
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("a bearer token is required")
        verifier: TokenVerifier = request.app.state.token_verifier
        try:
            principal = verifier(credentials.credentials)
        except InvalidTokenError as e:
            raise _unauthorized(f"the bearer token is not valid: {e}") from None
        if not principal.has_scope(scope):
            raise HTTPException(
                status_code=403,
                detail=f"this token lacks the scope {scope}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        request.state.principal = principal
        return principal

    return dependency
