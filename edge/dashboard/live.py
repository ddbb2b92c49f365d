"""The live alert feed: a WebSocket that pushes new alerts and the line's health.

The server polls the store (``last_parcel_id`` every 0.25 s, the new alerts when it moved) and
so works the same beside the live loop and as a separate process over its store. Each alert is
pushed as its data and its table row rendered in the user's language, so the page and the
feed show one row one way. The session is checked again on every poll: a logout or an expiry
closes the feed.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from edge.dashboard.auth import Session, find_session
from edge.dashboard.guard import SESSION_COOKIE, dashboard
from edge.dashboard.i18n import Translator
from edge.dashboard.pages import MAX_ID
from edge.dashboard.present import alert_json, health_rows

POLL_S = 0.25
HEALTH_EVERY = 4          # polls between health pushes: once a second
UNAUTHORISED = 4401       # WebSocket close codes: 4000 + the HTTP status they stand for
router = APIRouter()


@router.websocket("/ws/alerts")
async def alert_feed(websocket: WebSocket,
                     after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> None:
    board = dashboard(websocket)
    session = await run_in_threadpool(_session, websocket)
    # Browsers send cookies with a cross-site WebSocket too: the origin must be this site.
    origin = websocket.headers.get("origin")
    if session is None or (origin is not None and not _same_site(origin, websocket)):
        await websocket.close(code=UNAUTHORISED)
        return
    await websocket.accept()
    t = Translator(session.language)
    templates = board.templates.env
    row_template = templates.get_template("alert_row.html")
    health_template = templates.get_template("health.html")
    polls = 0
    try:
        while True:
            if await run_in_threadpool(_session, websocket) is None:
                await websocket.close(code=UNAUTHORISED)
                return
            alerts, health = await run_in_threadpool(_poll, board, after_id,
                                                     polls % HEALTH_EVERY == 0)
            if alerts:
                after_id = alerts[0]["id"]
                await websocket.send_json({"type": "alerts", "alerts": [
                    alert_json(row) | {"html": row_template.render(a=row, t=t,
                                                                   clock=board.clock)}
                    for row in reversed(alerts)]})   # oldest first: the page prepends each
            if health is not None:
                await websocket.send_json({"type": "health", "html": health_template.render(
                    health=health, t=t)})
            polls += 1
            await asyncio.sleep(POLL_S)
    except WebSocketDisconnect:
        return


def _session(websocket: WebSocket) -> Session | None:
    board = dashboard(websocket)
    return find_session(board.store, websocket.cookies.get(SESSION_COOKIE), board.now())


def _poll(board, after_id: int, with_health: bool) -> tuple[list, list | None]:
    store = board.store
    alerts = store.alerts(200, after_id) if store.last_parcel_id() > after_id else []
    health = health_rows(store.health(), board.now()) if with_health else None
    return alerts, health


def _same_site(origin: str, websocket: WebSocket) -> bool:
    host = websocket.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
