"""Who may call the server: bearer tokens, compared in constant time.

Tokens come from ``ServeOptions.token_file`` (one per line). Without a token file the server
must be bound to loopback (``check_security``; the CLI refuses otherwise) and every caller is
the one local principal. With one, every request and WebSocket needs a token, given as

1. the ``Authorization: Bearer <token>`` header (API clients; preferred), or
2. a ``token`` query parameter (``/v1/live?token=...``: browsers cannot set headers on a
   WebSocket; it shows up in access logs, so prefer 3 in pages), or
3. a ``facecast_token`` cookie (the web page sets it once; sent with <video src>, fetch and
   WebSocket requests of the same origin alike).

The first one present is the one checked. A wrong token is 401 (HTTP) or a close with code
1008 (WebSocket) and never says which part was wrong.

Public API: ``Auth`` (``Auth.from_options``), ``Principal``, ``require_auth`` (a FastAPI
dependency for HTTP routes *and* WebSocket routes: ``principal: Principal = Depends(require_auth)``),
``check_security(options)``, ``TOKEN_COOKIE``, ``TOKEN_QUERY``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection

from ..errors import InputError
from .options import ServeOptions

__all__ = ["Auth", "Principal", "TOKEN_COOKIE", "TOKEN_QUERY", "check_security", "load_tokens", "require_auth"]

TOKEN_COOKIE = "facecast_token"
TOKEN_QUERY = "token"
MIN_TOKEN_CHARS = 16
LOCAL_ID = "local"


@dataclass(frozen=True)
class Principal:
    """The caller. ``id``: a stable, non-secret name of its token (the first 16 hex digits of its
    SHA-256; "local" without tokens): what jobs, faces and limits are kept per."""

    id: str


def load_tokens(path: str | Path) -> tuple[str, ...]:
    """The tokens in ``path``: one per line, blank lines and # comments skipped. InputError naming
    the file when it cannot be read, holds none, or one is shorter than 16 characters."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the token file ({getattr(exc, 'strerror', None) or exc}). "
                         "Give a text file with one token per line.") from None
    tokens = tuple(t.strip() for t in lines if t.strip() and not t.strip().startswith("#"))
    if not tokens:
        raise InputError(f"{p}: the token file holds no token. Put one per line, e.g. from "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.")
    for n, t in enumerate(tokens, 1):
        if len(t) < MIN_TOKEN_CHARS or any(c.isspace() for c in t):
            raise InputError(f"{p}: token {n} is too short or holds spaces; use at least {MIN_TOKEN_CHARS} "
                             "characters without spaces (e.g. secrets.token_urlsafe(32)).")
    return tokens


def check_security(options: ServeOptions) -> None:
    """InputError unless the bind is safe: a non-loopback host needs a token file."""
    if not options.loopback and options.token_file is None:
        raise InputError(f"--host {options.host}: not a loopback address, so anyone who can reach it could use "
                         "the server. Give --token-file FILE (one secret per line; clients send "
                         "'Authorization: Bearer TOKEN'), or bind 127.0.0.1.")


class Auth:
    """The tokens of a server and the check of one request's credentials."""

    def __init__(self, tokens: tuple[str, ...] = ()) -> None:
        self._tokens = [(t.encode(), _token_id(t)) for t in tokens]

    @classmethod
    def from_options(cls, options: ServeOptions) -> "Auth":
        check_security(options)
        return cls(load_tokens(options.token_file) if options.token_file else ())

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def check(self, token: str | None) -> Principal | None:
        """The principal of ``token``, or None when it is missing or wrong. Every known token is
        compared (hmac.compare_digest), so the time taken says nothing about which matched."""
        if not self._tokens:
            return Principal(LOCAL_ID)
        if not token:
            return None
        given = token.encode()
        found = None
        for secret, tid in self._tokens:
            if hmac.compare_digest(given, secret):
                found = tid
        return Principal(found) if found else None

    def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The principal of a request or WebSocket, from the header, the query or the cookie."""
        return self.check(credentials(conn))


def credentials(conn: HTTPConnection) -> str | None:
    """The token a request carries: Authorization bearer, else ?token=, else the cookie."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return conn.query_params.get(TOKEN_QUERY) or conn.cookies.get(TOKEN_COOKIE)


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def require_auth(conn: HTTPConnection) -> Principal:
    """FastAPI dependency for HTTP and WebSocket routes alike: the caller's Principal, or 401
    (HTTP, JSON ``{"error": ...}``) / close code 1008 (WebSocket, before it is accepted)."""
    auth: Auth = conn.app.state.facecast.auth
    principal = auth.authenticate(conn)
    if principal is not None:
        return principal
    message = "a valid token is required: send 'Authorization: Bearer TOKEN' (or ?token= / the facecast_token cookie)"
    if conn.scope["type"] == "websocket":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="unauthorized")
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})
