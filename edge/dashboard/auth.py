"""Passwords, sessions and the login rate limit: the web-free half of the dashboard's security.

Passwords are argon2id hashes (argon2-cffi's defaults). A session is a random token held by the
browser in an HttpOnly cookie; the store keeps only its SHA-256, so a copy of the database lets
nobody log in. Each session carries one CSRF token, which every POST must echo back.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.store import Store

SESSION_S = 12 * 3600
ROLE_RANK = {"operator": 0, "engineer": 1, "admin": 2}
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``, salt and parameters included."""
    if not password:
        raise ValueError("a password may not be empty")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(store: Store, name: str, password: str) -> bool:
    """Whether ``name`` is an enabled user with this password. An unknown name costs one
    hash check too, so the response time does not tell which names exist."""
    user = store.user(name)
    if user is None:
        verify_password(_unknown_user_hash(), password)
        return False
    return verify_password(user["password_hash"], password)


@functools.cache
def _unknown_user_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response times do not reveal how much of a token matched."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def has_role(role: str, needed: str) -> bool:
    """Whether ``role`` is ``needed`` or above it (operator < engineer < admin)."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    language: str
    csrf: str
    token_hash: str


def start_session(store: Store, user: str, now: float) -> str:
    """A new session for ``user``; returns the token for the cookie (kept nowhere else)."""
    token = secrets.token_urlsafe(32)
    with store.transaction() as conn:
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        conn.execute("INSERT INTO sessions (token_hash, user, csrf, created_at, expires_at) "
                     "VALUES (?, ?, ?, ?, ?)", (token_digest(token), user,
                                                secrets.token_urlsafe(32), now, now + SESSION_S))
    return token


def find_session(store: Store, token: str | None, now: float) -> Session | None:
    """The live session of ``token`` with its user (a disabled user has none), or None."""
    if not token:
        return None
    row = store.conn.execute(
        "SELECT s.user, s.csrf, s.token_hash, u.role, u.language FROM sessions s "
        "JOIN users u ON u.name = s.user WHERE s.token_hash = ? AND s.expires_at > ? "
        "AND u.disabled = 0", (token_digest(token), now)).fetchone()
    if row is None:
        return None
    return Session(row["user"], row["role"], row["language"], row["csrf"], row["token_hash"])


def end_session(store: Store, session: Session) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))


class LoginLimiter:
    """At most ``attempts`` failed logins per user name and per client address in a sliding
    ``window_s``. A success clears the name's count but not the address's: one address trying
    many names is the attack this stops, and one good password must not reset it."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0,
                 now: Callable[[], float] = time.time):
        self.attempts, self.window_s, self.now = attempts, window_s, now
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= self.now() - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]   # an idle key holds no memory
        return failures

    def blocked(self, name: str, address: str) -> bool:
        return any(len(self._recent(key)) >= self.attempts
                   for key in (f"user:{name}", f"addr:{address}"))

    def failed(self, name: str, address: str) -> None:
        for key in (f"user:{name}", f"addr:{address}"):
            self._failures[key].append(self.now())

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"user:{name}", None)
