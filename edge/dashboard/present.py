"""How the store's rows look on a page: times in the hub's zone, ages, rows as template data."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from edge.store import Store
from edge.store.db import Box
from edge.store.images import IMAGE_FILES

STALE_S = 5.0   # a health report older than this no longer describes the line


class Clock:
    """Wall-clock seconds shown in the hub's time zone (``zone``, an IANA name; None: the
    machine's own zone), the zone always named beside them."""

    def __init__(self, zone: str | None = None):
        self.tz: tzinfo | None = ZoneInfo(zone) if zone else None
        self.zone = zone

    def local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, self.tz).astimezone(self.tz)

    def format(self, at: float | None, with_date: bool = True) -> str:
        if at is None:
            return "–"
        return self.local(at).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")

    def zone_name(self, at: float) -> str:
        """'Asia/Ho_Chi_Minh (+07)' or, for the machine's zone, its abbreviation and offset."""
        moment = self.local(at)
        offset = moment.strftime("%z")
        offset = f"UTC{offset[:3]}:{offset[3:]}"
        return f"{self.zone} ({offset})" if self.zone else f"{moment.tzname()} ({offset})"

    def parse(self, text: str) -> float:
        """A ``YYYY-MM-DDTHH:MM`` (an HTML datetime-local field) in the hub's zone, as seconds."""
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.tz) if self.tz else moment.astimezone()
        return moment.timestamp()


@dataclass(frozen=True)
class Health:
    component: str
    ok: bool
    stale: bool
    age_s: float
    detail: dict


def health_rows(rows: list[sqlite3.Row], now: float) -> list[Health]:
    result = []
    for row in rows:
        try:
            detail = json.loads(row["detail"] or "{}")
        except json.JSONDecodeError:
            detail = {"detail": row["detail"]}
        age = max(0.0, now - row["at"])
        result.append(Health(row["component"], bool(row["ok"]), age > STALE_S, age,
                             detail if isinstance(detail, dict) else {"detail": detail}))
    return result


def alert_json(row: sqlite3.Row) -> dict:
    """The fields of an alert the JSON API gives (the page renders the same row)."""
    return {key: row[key] for key in ("id", "tracking", "scanned_at", "decided_at", "action",
                                      "reason", "top_class", "top_score", "review")} | {
        "weapon": bool(row["weapon"])}


def detail_text(detail: str) -> str:
    """An audit row's JSON detail as 'key: value' pairs; empty values left out."""
    try:
        data = json.loads(detail or "{}")
    except json.JSONDecodeError:
        return detail
    if not isinstance(data, dict):
        return str(data)
    return "; ".join(f"{k}: {v}" for k, v in data.items() if v not in ("", None, [], {}))


@dataclass(frozen=True)
class Moment:
    """One line of a parcel's timeline: when, what (a string key), who, and a detail."""

    at: float
    what: str
    user: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ParcelView:
    parcel: sqlite3.Row
    boxes: list[Box]
    decisions: list[sqlite3.Row]
    images: frozenset[str]     # which of the parcel's pictures are on disk
    timeline: list[Moment]


def parcel_view(store: Store, parcel_id: int) -> ParcelView | None:
    parcel = store.parcel(parcel_id)
    if parcel is None:
        return None
    decisions = store.decisions(parcel_id)
    images = frozenset(name for name in IMAGE_FILES
                       if store.image_path(parcel_id, name) is not None)
    return ParcelView(parcel, store.boxes(parcel_id), decisions, images,
                      timeline(parcel, decisions))


def timeline(parcel: sqlite3.Row, decisions: list[sqlite3.Row]) -> list[Moment]:
    moments = [Moment(parcel["scanned_at"], "timeline.scanned"),
               Moment(parcel["decided_at"], "timeline.decided", detail=parcel["action"])]
    if parcel["sent_at"] is not None:
        lane = "" if parcel["lane"] is None else str(parcel["lane"])
        moments.append(Moment(parcel["sent_at"], "timeline.sent", detail=lane))
    if parcel["outcome_at"] is not None:
        moments.append(Moment(parcel["outcome_at"], "timeline.outcome",
                              detail=parcel["outcome"] or ""))
    moments += [Moment(d["at"], f"decision.{d['kind']}", d["user"], d["note"])
                for d in decisions]
    return sorted(moments, key=lambda m: m.at)


@dataclass(frozen=True)
class Bar:
    label: str       # the hour's start, local time
    parcels: int
    alerts: int
    x: float         # left edge in the chart's units
    height: float    # parcels bar, 0..100
    alert_height: float


def hourly_bars(rows: list[sqlite3.Row], now: float, clock: Clock, hours: int = 24
                ) -> list[Bar]:
    """The last ``hours`` hours as bars (every hour, empty ones too), scaled to 0..100."""
    counts = {row["hour"]: (row["parcels"], row["alerts"] or 0) for row in rows}
    last = int(now // 3600) * 3600
    starts = [last - 3600 * i for i in range(hours - 1, -1, -1)]
    peak = max((counts.get(h, (0, 0))[0] for h in starts), default=0) or 1
    bars = []
    for i, hour in enumerate(starts):
        parcels, alerts = counts.get(hour, (0, 0))
        bars.append(Bar(clock.local(hour).strftime("%H:%M"), parcels, alerts, i * 20,
                        100 * parcels / peak, 100 * alerts / peak))
    return bars
