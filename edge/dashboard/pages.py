"""The pages: the live alert queue, a parcel, history, the audit log, statistics, users."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from edge.dashboard.auth import Session
from edge.dashboard.guard import dashboard, require
from edge.dashboard.present import health_rows, hourly_bars, parcel_view
from edge.dashboard.render import render
from edge.store import StoreError

MAX_ID = 2**62          # SQLite integers are 64-bit: larger ids name no row
PAGE = 50
ParcelId = Annotated[int, Path(ge=1, le=MAX_ID)]
BeforeId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Operator = Annotated[Session, Depends(require("operator"))]
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def alert_queue(request: Request, session: Operator) -> HTMLResponse:
    board = dashboard(request)
    return render(request, session, "alerts.html", alerts=board.store.alerts(PAGE),
                  health=health_rows(board.store.health(), board.now()),
                  last_id=board.store.last_parcel_id())


@router.get("/parcels/{parcel_id}", response_class=HTMLResponse)
def parcel_page(request: Request, session: Operator, parcel_id: ParcelId) -> HTMLResponse:
    return _parcel(request, session, parcel_id)


def _parcel(request: Request, session: Session, parcel_id: int, error: str = "",
            status_code: int = 200) -> HTMLResponse:
    view = parcel_view(dashboard(request).store, parcel_id)
    if view is None:
        raise HTTPException(404, "error.no_parcel")
    return render(request, session, "parcel.html", status_code, view=view, error=error)


@router.post("/parcels/{parcel_id}/decide", response_class=HTMLResponse)
def decide(request: Request,
           session: Annotated[Session, Depends(require("operator", csrf=True))],
           parcel_id: ParcelId, kind: Annotated[Literal["confirm", "clear", "note"], Form()],
           note: Annotated[str, Form(max_length=2000)] = "") -> HTMLResponse:
    store = dashboard(request).store
    if store.parcel(parcel_id) is None:
        raise HTTPException(404, "error.no_parcel")
    try:
        store.decide(parcel_id, session.user, kind, note)
    except StoreError as exc:
        return _parcel(request, session, parcel_id, str(exc), 409)
    # Post, redirect, get: reloading the page does not decide twice.
    return RedirectResponse(f"/parcels/{parcel_id}", 303)


@router.get("/history", response_class=HTMLResponse)
def history(request: Request, session: Operator,
            tracking: Annotated[str, Query(max_length=64)] = "",
            since: Annotated[str, Query(max_length=32)] = "",
            until: Annotated[str, Query(max_length=32)] = "",
            cls: Annotated[str, Query(max_length=64)] = "",
            review: Literal["", "none", "pending", "confirmed", "cleared"] = "",
            action: Literal["", "clear", "divert", "uninspected"] = "",
            before_id: BeforeId = None) -> HTMLResponse:
    board = dashboard(request)
    filters = {"tracking": tracking, "since": since, "until": until, "cls": cls,
               "review": review, "action": action}
    try:
        span = {name: board.clock.parse(text) if text else None
                for name, text in (("since", since), ("until", until))}
    except ValueError:
        return render(request, session, "history.html", 400, parcels=[], filters=filters,
                      error="history.bad_time", older=None)
    parcels = board.store.search(tracking.strip() or None, span["since"], span["until"],
                                 cls.strip() or None, review or None, action or None,
                                 PAGE + 1, before_id)
    older = (urlencode(filters | {"before_id": parcels[PAGE - 1]["id"]})
             if len(parcels) > PAGE else None)
    return render(request, session, "history.html", parcels=parcels[:PAGE], filters=filters,
                  error="", older=older)


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, session: Annotated[Session, Depends(require("engineer"))],
          before_id: BeforeId = None) -> HTMLResponse:
    rows = dashboard(request).store.audit_log(PAGE + 1, before_id=before_id)
    older = rows[PAGE - 1]["id"] if len(rows) > PAGE else None
    return render(request, session, "audit.html", rows=rows[:PAGE], older=older)


@router.get("/stats", response_class=HTMLResponse)
def stats(request: Request, session: Operator) -> HTMLResponse:
    board = dashboard(request)
    now = board.now()
    periods = [("stats.last_hour", board.store.stats(now - 3600, now)),
               ("stats.last_day", board.store.stats(now - 86400, now))]
    return render(request, session, "stats.html", periods=periods,
                  bars=hourly_bars(board.store.hourly(now - 86400, now), now, board.clock))


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, session: Annotated[Session, Depends(require("admin"))]
          ) -> HTMLResponse:
    return render(request, session, "users.html", users=dashboard(request).store.users())
