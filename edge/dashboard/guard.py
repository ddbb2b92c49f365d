"""The FastAPI side of security: who is asking (session cookie), whether their role may, and
whether a POST carries the session's CSRF token. Every route but ``/login``, ``/healthz`` and
the static files depends on ``require``.

A page asked for without a session redirects to the login page; an API call, an image or the
WebSocket gets 401. A role too low gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from starlette.requests import HTTPConnection

from edge.dashboard.auth import LoginLimiter, Session, find_session, has_role, same_secret
from edge.dashboard.present import Clock
from edge.store import Store

SESSION_COOKIE = "edge_session"
CSRF_HEADER = "x-csrf-token"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Dashboard:
    """What every route reaches through ``request.app.state.dashboard``."""

    store: Store
    clock: Clock
    limiter: LoginLimiter
    templates: Jinja2Templates
    secure_cookies: bool
    now: Callable[[], float]


class LoginRequired(Exception):
    """No live session; ``page`` says whether to redirect to the login page or answer 401."""

    def __init__(self, page: bool, path: str):
        super().__init__("login required")
        self.page, self.path = page, path


def dashboard(conn: HTTPConnection) -> Dashboard:
    return conn.app.state.dashboard


def current_session(conn: HTTPConnection) -> Session | None:
    board = dashboard(conn)
    return find_session(board.store, conn.cookies.get(SESSION_COOKIE), board.now())


def require(role: str, *, page: bool = True, csrf: bool = False):
    """A dependency giving the caller's session when its role is ``role`` or above; with
    ``csrf``, the request must also carry the session's CSRF token (form field ``csrf`` or
    header ``X-CSRF-Token``)."""

    async def dependency(request: Request) -> Session:
        session = current_session(request)
        if session is None:
            raise LoginRequired(page, request.url.path)
        if not has_role(session.role, role):
            raise HTTPException(403, "error.forbidden")
        if csrf and not same_secret(await given_csrf(request), session.csrf):
            raise HTTPException(403, "error.csrf")
        return session

    dependency.__name__ = f"require_{role}"
    return dependency


async def given_csrf(request: Request) -> str | None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get("csrf")
        given = value if isinstance(value, str) else None
    return given


def login_redirect_target(path: str) -> str:
    return f"/login?next={quote(path, safe='/')}"


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/``: a login link cannot send an
    operator to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
