"""Rendering a page: the template gets the translator, the user, the CSRF token and the clock."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from edge.dashboard.auth import Session, has_role
from edge.dashboard.guard import dashboard
from edge.dashboard.i18n import Translator, language_from_header


def language_of(request: Request, session: Session | None) -> str:
    """The user's saved language; before login, ``?lang=`` or the browser's Accept-Language."""
    if session is not None:
        return session.language
    return language_from_header(request.query_params.get("lang")
                                or request.headers.get("accept-language", ""))


def render(request: Request, session: Session | None, template: str, status_code: int = 200,
           **context) -> HTMLResponse:
    board = dashboard(request)
    now = board.now()
    page_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return board.templates.TemplateResponse(request, template, {
        "t": Translator(language_of(request, session)), "user": session,
        "csrf": session.csrf if session else "", "clock": board.clock, "now": now,
        "zone": board.clock.zone_name(now), "page_path": page_path,
        "may": (lambda role: session is not None and has_role(session.role, role)),
        **context}, status_code=status_code)
