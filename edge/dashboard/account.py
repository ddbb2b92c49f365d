"""Logging in and out, and choosing the interface language."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from edge.dashboard.auth import (
    SESSION_S,
    Session,
    check_password,
    end_session,
    same_secret,
    start_session,
)
from edge.dashboard.guard import SESSION_COOKIE, current_session, dashboard, require, safe_next
from edge.dashboard.i18n import LANGUAGES
from edge.dashboard.render import render

LOGIN_CSRF_COOKIE = "edge_login_csrf"
router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    if current_session(request) is not None:
        return RedirectResponse(safe_next(next), 303)
    return _login_form(request, next)


def _login_form(request: Request, next: str, error: str = "", status_code: int = 200,
                name: str = "") -> HTMLResponse:
    # Before a session there is no session token to tie a CSRF token to: the form and a
    # cookie carry one random value, which a cross-site form cannot read nor set.
    token = secrets.token_urlsafe(32)
    response = render(request, None, "login.html", status_code, body_class="login",
                      next=safe_next(next),
                      login_csrf=token, error=error, name=name,
                      lang_param=request.query_params.get("lang", ""))
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, name: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=1024)],
          csrf: Annotated[str, Form(max_length=128)] = "",
          next: Annotated[str, Form(max_length=2048)] = "/") -> HTMLResponse:
    board = dashboard(request)
    address = request.client.host if request.client else "unknown"
    if not same_secret(csrf, request.cookies.get(LOGIN_CSRF_COOKIE, "\0")):
        return _login_form(request, next, "error.csrf", 403, name)
    if board.limiter.blocked(name, address):
        board.store.audit(name, "login-refused", detail={"address": address,
                                                         "why": "rate limit"})
        return _login_form(request, next, "login.too_many", 429, name)
    if not check_password(board.store, name, password):
        board.limiter.failed(name, address)
        board.store.audit(name, "login-failed", detail={"address": address})
        return _login_form(request, next, "login.failed", 401, name)
    board.limiter.succeeded(name)
    token = start_session(board.store, name, board.now())
    board.store.audit(name, "login", detail={"address": address})
    response = RedirectResponse(safe_next(next), 303)
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=SESSION_S)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(request: Request,
           session: Annotated[Session, Depends(require("operator", csrf=True))]
           ) -> RedirectResponse:
    board = dashboard(request)
    end_session(board.store, session)
    board.store.audit(session.user, "logout")
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/language")
def set_language(request: Request,
                 session: Annotated[Session, Depends(require("operator", csrf=True))],
                 language: Annotated[str, Form(pattern="^(" + "|".join(LANGUAGES) + ")$")],
                 next: Annotated[str, Form(max_length=2048)] = "/") -> RedirectResponse:
    board = dashboard(request)
    if language != session.language:
        board.store.set_language(session.user, language)
        board.store.audit(session.user, "language", detail={"from": session.language,
                                                            "to": language})
    return RedirectResponse(safe_next(next), 303)


def _set_cookie(request: Request, response, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=dashboard(request).secure_cookies)
