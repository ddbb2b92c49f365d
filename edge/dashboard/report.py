"""The incident report of a confirmed threat: one self-contained HTML file for the authorities.

The pictures are embedded as data URIs and the detector's boxes drawn over them, so the file
opens anywhere, offline, and prints (print CSS, A4). For a PDF the browser's own print to PDF
is the path: no PDF library is needed to run the line. Every export goes to the audit log.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from edge.dashboard.auth import Session
from edge.dashboard.guard import dashboard, require
from edge.dashboard.i18n import Translator
from edge.dashboard.pages import ParcelId
from edge.dashboard.present import parcel_view
from edge.store import Store

MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg"}
# The file's own inline styles and data images; nothing else loads, nothing runs.
REPORT_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                 "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
router = APIRouter()


@router.get("/parcels/{parcel_id}/report", response_class=HTMLResponse)
def incident_report(request: Request,
                    session: Annotated[Session, Depends(require("operator"))],
                    parcel_id: ParcelId) -> HTMLResponse:
    board = dashboard(request)
    view = parcel_view(board.store, parcel_id)
    if view is None:
        raise HTTPException(404, "error.no_parcel")
    if view.parcel["review"] != "confirmed":
        raise HTTPException(409, "error.not_confirmed")
    board.store.audit(session.user, "report-export", parcel_id,
                      {"tracking": view.parcel["tracking"]})
    now = board.now()
    html = board.templates.get_template("report.html").render(
        t=Translator(session.language), view=view, clock=board.clock,
        zone=board.clock.zone_name(now), now=now, exported_by=session.user,
        images=embedded_images(board.store, parcel_id),
        audit=board.store.audit_log(1000, parcel_id=parcel_id))
    filename = "incident-" + re.sub(r"[^A-Za-z0-9_-]", "_", view.parcel["tracking"]) + ".html"
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_POLICY,
                                       "Content-Disposition": f'inline; filename="{filename}"'})


def embedded_images(store: Store, parcel_id: int) -> dict[str, str]:
    """name -> data URI of each of the parcel's pictures on disk."""
    images = {}
    for name in ("xray.jpg", "grey.jpg", "photo.jpg"):
        path = store.image_path(parcel_id, name)
        if path is not None:
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            images[name] = f"data:{MEDIA_TYPES[path.suffix]};base64,{encoded}"
    return images
