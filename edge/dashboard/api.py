"""What scripts read: JSON under /api/, the parcels' pictures, and an anonymous liveness probe.

These answer 401, not a redirect, to a caller without a session.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from edge.dashboard.auth import Session
from edge.dashboard.guard import dashboard, require
from edge.dashboard.pages import MAX_ID, ParcelId
from edge.dashboard.present import alert_json, health_rows

Caller = Annotated[Session, Depends(require("operator", page=False))]
router = APIRouter()


@router.get("/api/alerts")
def alerts(request: Request, caller: Caller,
           after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
           limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    """Alerts newest first; with ``after_id``, only those stored after that parcel."""
    store = dashboard(request).store
    return {"last_id": store.last_parcel_id(),
            "alerts": [alert_json(row) for row in store.alerts(limit, after_id)]}


@router.get("/api/health")
def health(request: Request, caller: Caller) -> dict:
    """Each component's last report: ok, its age in seconds, stale past 5 s, its details."""
    board = dashboard(request)
    return {"components": [vars(h) for h in health_rows(board.store.health(), board.now())]}


@router.get("/parcels/{parcel_id}/image/{name}", response_class=FileResponse)
def image(request: Request, caller: Caller, parcel_id: ParcelId,
          name: Annotated[str, Path(max_length=64)]) -> FileResponse:
    # The store serves only the names its writer writes, inside its own image folder.
    path = dashboard(request).store.image_path(parcel_id, name)
    if path is None:
        raise HTTPException(404, "error.no_image")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """Anonymous: says only whether the dashboard can read its store."""
    try:
        dashboard(request).store.last_parcel_id()
    except Exception:  # noqa: BLE001 - any failure to read means not ready
        return JSONResponse({"ok": False}, status_code=503)
    return JSONResponse({"ok": True})
