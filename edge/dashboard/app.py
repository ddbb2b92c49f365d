"""The dashboard's FastAPI app over a store, and ``serve`` to run it with uvicorn.

The app reads and writes only through ``Store``: it runs the same beside the live loop (in
its process, over its store) and as ``edge dashboard`` over a store on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.dashboard import account, api, live, pages, report
from edge.dashboard.auth import LoginLimiter
from edge.dashboard.guard import (
    TEMPLATES,
    Dashboard,
    LoginRequired,
    current_session,
    login_redirect_target,
)
from edge.dashboard.i18n import Translator
from edge.dashboard.present import Clock, detail_text
from edge.dashboard.render import render
from edge.store import Store

STATIC = Path(__file__).parent / "static"
# Everything the pages load comes from this site; no frames, no inline scripts.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def create_app(store: Store, *, secure_cookies: bool = False,
               now: Callable[[], float] = time.time, zone: str | None = None) -> FastAPI:
    """The dashboard over ``store``. ``secure_cookies``: cookies only over HTTPS (set it when
    a TLS proxy is in front). ``now``: the wall clock (tests move it). ``zone``: the hub's IANA
    time zone for the times shown; None is the machine's own."""
    app = FastAPI(title="Parcel inspection dashboard", docs_url=None, redoc_url=None,
                  openapi_url=None)
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals["detail_text"] = detail_text
    app.state.dashboard = Dashboard(store, Clock(zone), LoginLimiter(now=now), templates,
                                    secure_cookies, now)
    for module in (account, pages, api, report, live):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def serve(store_root: Path | str, host: str = "127.0.0.1", port: int = 8000, *,
          secure_cookies: bool = False, zone: str | None = None) -> None:
    """Run the dashboard over the store in ``store_root`` until interrupted."""
    import uvicorn

    app = create_app(Store(store_root), secure_cookies=secure_cookies, zone=zone)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/ws/")) or "/image/" in path or path == "/healthz"


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    if exc.page:
        return RedirectResponse(login_redirect_target(exc.path), 303)
    return JSONResponse({"detail": "login required"}, 401)


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """A path that names nothing (a parcel id that is not a number) is 404, as any other
    unknown path; a bad query or form stays 422."""
    if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
        return await _http_error(request, StarletteHTTPException(404, "error.not_found"))
    return await request_validation_exception_handler(request, exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    session = current_session(request)
    t = Translator(session.language if session else "en")
    key = exc.detail if isinstance(exc.detail, str) and t.knows(exc.detail) else "error.other"
    return render(request, session, "error.html", exc.status_code, message=key,
                  status=exc.status_code)
