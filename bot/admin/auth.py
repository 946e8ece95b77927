"""Who may use the admin page: the credential, sessions, CSRF tokens and the login limit.

The credential is a token from an environment variable (``[web] admin_token_env``)
or a password whose scrypt hash is in the config (``[web] admin_password_hash``,
printed by ``confab admin hash-password``); either one opens the page. A login
opens a session held in memory (a restart logs everyone out) that expires
``session_ttl_s`` after it began. Each session has its own CSRF token, which every
change must carry. Failed logins are counted per client address: past
``login_attempts`` within ``login_window_s`` the address is refused, the right
password included, until the window has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from confab.bot.config import WebConfig
from confab.bot.errors import ConfigError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_TOKEN_CHARS = 16
SESSIONS_AT_MOST = 1000
ADDRESSES_AT_MOST = 10_000


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password``, for ``admin_password_hash``."""
    salt = salt if salt is not None else os.urandom(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encoded[0]}${encoded[1]}"


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` hashes to ``stored`` (False for a malformed hash)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        found = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)


@dataclass(frozen=True, slots=True)
class Credential:
    """What opens the admin page: a token, a password hash, or both."""

    token: str | None
    password_hash: str | None

    @classmethod
    def from_config(cls, config: WebConfig) -> Credential | None:
        """The configured credential; None when neither is set (the page is off).
        Raises ConfigError for a token too short to resist guessing."""
        token = os.environ.get(config.admin_token_env, "") if config.admin_token_env else ""
        if token and len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{config.admin_token_env} is too short for an admin token: "
                f"use at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`)"
            )
        if not token and not config.admin_password_hash:
            return None
        return cls(token or None, config.admin_password_hash or None)

    def accepts(self, secret: str) -> tuple[bool, str]:
        """Whether ``secret`` is the token or the password, and which it was."""
        if self.token is not None and hmac.compare_digest(secret.encode(), self.token.encode()):
            return True, "token"
        if self.password_hash is not None and password_matches(secret, self.password_hash):
            return True, "password"
        return False, ""


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in admin: who they said they are, how they logged in, their CSRF token."""

    id: str
    who: str
    method: str
    csrf: str
    expires_at: float


class Sessions:
    """Open sessions by their cookie value; each ends ``ttl_s`` after it began."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._open: dict[str, Session] = {}

    def open(self, who: str, method: str) -> Session:
        now = self._clock()
        self._open = {k: s for k, s in self._open.items() if s.expires_at > now}
        if len(self._open) >= SESSIONS_AT_MOST:  # the oldest make room
            for key in sorted(self._open, key=lambda k: self._open[k].expires_at)[:100]:
                del self._open[key]
        session = Session(
            secrets.token_urlsafe(32), who, method, secrets.token_urlsafe(32), now + self._ttl_s
        )
        self._open[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The open session of this cookie value; None when unknown or expired."""
        session = self._open.get(session_id or "")
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._open[session.id]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        self._open.pop(session_id or "", None)


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())


class LoginLimit:
    """Failed logins per client address in a sliding window."""

    def __init__(
        self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._attempts = attempts
        self._window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        failures = self._recent(address)
        if len(failures) < self._attempts:
            return 0.0
        return max(0.0, failures[0] + self._window_s - self._clock())

    def failed(self, address: str) -> None:
        if len(self._failures) >= ADDRESSES_AT_MOST and address not in self._failures:
            self._failures = {a: f for a, f in self._failures.items() if self._recent(a)}
        self._recent(address).append(self._clock())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        cutoff = self._clock() - self._window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures
