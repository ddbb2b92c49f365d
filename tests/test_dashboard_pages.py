"""What operators see and do, through the app over a real store: both languages, the parcel
actions, the live feed, the incident report, history, the audit log and the figures."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest
from dashboard_world import add_parcel, make_store
from fastapi.testclient import TestClient
from test_dashboard_security import csrf_of, login

from edge.dashboard.app import create_app
from edge.dashboard.i18n import STRINGS, Translator, language_from_header
from edge.dashboard.present import Clock

TEMPLATES = Path(__file__).parents[1] / "edge" / "dashboard" / "templates"


@pytest.fixture
def world(tmp_path):
    store = make_store(tmp_path / "store")
    ids = [add_parcel(store, seq, threat=seq != 3, photo=seq == 1) for seq in (1, 2, 3)]
    return store, create_app(store, zone="Asia/Ho_Chi_Minh"), ids


def test_both_languages_have_exactly_the_same_keys_and_fields():
    english, vietnamese = STRINGS["en"], STRINGS["vi"]
    assert set(english) == set(vietnamese)
    for key in english:
        fields = set(re.findall(r"{(\w+)}", english[key]))
        assert fields == set(re.findall(r"{(\w+)}", vietnamese[key])), key


def visible_text(template: str) -> list[str]:
    """Words a template shows on its own: text outside Jinja tags, HTML tags, styles and
    scripts, and the attributes a person reads (title, placeholder, alt, aria-label)."""
    source = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", " ", template, flags=re.S)
    source = re.sub(r"<(style|script)\b.*?</\1>", " ", source, flags=re.S)
    shown = re.findall(r'\b(?:title|placeholder|alt|aria-label)="([^"]*)"', source)
    shown += re.sub(r"<[^>]*>", " ", source).split()
    return [html.unescape(word) for word in shown if re.search(r"[^\W\d_]", html.unescape(word))]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_show_no_text_outside_the_string_table(template):
    assert visible_text((TEMPLATES / template).read_text()) == []


def test_the_text_finder_sees_text_where_there_is_some():
    assert visible_text('<p>{{ t("x") }} Hello</p><input placeholder="name">') == ["name",
                                                                                  "Hello"]


@pytest.mark.parametrize(("header", "language"), [
    ("vi-VN,vi;q=0.9,en;q=0.8", "vi"), ("en-GB,en;q=0.9,vi;q=0.8", "en"),
    ("fr-FR,vi;q=0.5", "vi"), ("de", "en"), ("", "en"), ("en;q=0.1, vi;q=0.9", "vi"),
    ("vi;q=0", "en"), ("vi;q=abc,en", "en")])
def test_the_login_page_follows_accept_language(header, language):
    assert language_from_header(header) == language


def test_the_login_page_speaks_the_browsers_language(world):
    _, app, _ = world
    page = TestClient(app).get("/login", headers={"accept-language": "vi-VN,vi;q=0.9"})
    assert Translator("vi")("login.password") in page.text and 'lang="vi"' in page.text
    page = TestClient(app).get("/login?lang=en", headers={"accept-language": "vi"})
    assert Translator("en")("login.password") in page.text


def test_switching_the_language_is_saved_for_the_user_and_audited(world):
    store, app, _ = world
    client = login(app, "olga")
    assert "Alert queue" in client.get("/").text
    response = client.post("/language", data={"language": "vi", "csrf": csrf_of(client),
                                              "next": "/history"}, follow_redirects=False)
    assert response.headers["location"] == "/history"
    assert store.user("olga")["language"] == "vi"
    assert "Hàng đợi cảnh báo" in client.get("/").text
    row = store.audit_log(1)[0]
    assert (row["user"], row["event"], json.loads(row["detail"])) == (
        "olga", "language", {"from": "en", "to": "vi"})
    assert "Hàng đợi cảnh báo" in login(app, "olga").get("/").text   # a new session too


def test_every_page_renders_in_both_languages(world):
    store, app, ids = world
    store.decide(ids[0], "ada", "confirm", "a pistol in a toaster")
    client = login(app, "ada")
    pages = ["/", f"/parcels/{ids[0]}", f"/parcels/{ids[2]}", "/history", "/audit", "/stats",
             "/users", f"/parcels/{ids[0]}/report", "/nowhere"]
    for language in ("en", "vi"):
        client.post("/language", data={"language": language, "csrf": csrf_of(client)})
        for page in pages:
            response = client.get(page)
            assert response.status_code == (404 if page == "/nowhere" else 200), page
            assert f'lang="{language}"' in response.text


def test_confirm_clear_and_note_record_a_decision_with_its_audit_row(world):
    store, app, ids = world
    client = login(app, "olga")
    csrf = csrf_of(client)
    for parcel, kind, note in ((ids[0], "confirm", ""), (ids[1], "clear", "toy gun"),
                               (ids[1], "note", "customer called")):
        response = client.post(f"/parcels/{parcel}/decide",
                               data={"kind": kind, "note": note, "csrf": csrf},
                               follow_redirects=False)
        assert response.status_code == 303
    assert store.parcel(ids[0])["review"] == "confirmed"
    assert store.parcel(ids[1])["review"] == "cleared"
    assert [(d["user"], d["kind"]) for d in store.decisions(ids[1])] == [("olga", "clear"),
                                                                         ("olga", "note")]
    page = client.get(f"/parcels/{ids[1]}").text
    assert "customer called" in page and "toy gun" in page
    events = [(r["event"], r["parcel_id"]) for r in store.audit_log(3)]
    assert events == [("note", ids[1]), ("clear", ids[1]), ("confirm", ids[0])]


def test_a_decision_the_store_refuses_shows_its_reason_with_409(world):
    store, app, ids = world
    client = login(app, "olga")
    response = client.post(f"/parcels/{ids[2]}/decide",
                           data={"kind": "confirm", "csrf": csrf_of(client)})
    assert response.status_code == 409
    assert "raised no alert" in response.text
    response = client.post(f"/parcels/{ids[0]}/decide",
                           data={"kind": "note", "note": "   ", "csrf": csrf_of(client)})
    assert response.status_code == 409 and "a note needs some text" in response.text
    response = client.post("/parcels/999/decide",
                           data={"kind": "note", "note": "x", "csrf": csrf_of(client)})
    assert response.status_code == 404


def test_the_parcel_page_shows_pictures_boxes_verdict_and_timeline(world):
    store, app, ids = world
    store.conn.execute("UPDATE parcels SET lane = 2, sent_at = decided_at + 0.1, "
                       "outcome = 'acked', outcome_at = decided_at + 0.2 WHERE id = ?",
                       (ids[0],))
    page = login(app, "olga").get(f"/parcels/{ids[0]}").text
    parcel = store.parcel(ids[0])
    for part in ("image/xray.jpg", "image/grey.jpg", "image/material.png", "image/photo.jpg",
                 parcel["tracking"], "<rect", "acknowledged", "lane 2", "Command sent",
                 "Asia/Ho_Chi_Minh (UTC+07:00)"):
        assert part in page, part
    assert len(re.findall(r"<rect ", page)) == len(store.boxes(ids[0]))
    assert "image/photo.jpg" not in login(app, "olga").get(f"/parcels/{ids[1]}").text


def test_the_incident_report_needs_a_confirmed_threat_and_is_self_contained(world):
    store, app, ids = world
    client = login(app, "olga")
    assert client.get(f"/parcels/{ids[0]}/report").status_code == 409
    assert client.get("/parcels/999/report").status_code == 404
    store.decide(ids[0], "olga", "confirm", "revolver, loaded")
    response = client.get(f"/parcels/{ids[0]}/report")
    assert response.status_code == 200
    report = response.text
    # The X-ray, the grey rendering and the photo, each carried inside the file.
    assert report.count("data:image/jpeg;base64,") == 3
    assert not re.search(r'(src|href)="(?!data:)', report)   # nothing to fetch
    assert "revolver, loaded" in report and store.parcel(ids[0])["tracking"] in report
    assert "Save as PDF" in report and "@media print" in report
    assert "default-src 'none'" in response.headers["content-security-policy"]
    row = store.audit_log(1)[0]
    assert (row["user"], row["event"], row["parcel_id"]) == ("olga", "report-export", ids[0])


def test_history_searches_by_tracking_prefix_class_review_action_and_time(world):
    store, app, ids = world
    store.decide(ids[0], "olga", "confirm")
    client = login(app, "olga")

    def found(**query) -> list[int]:
        page = client.get("/history", params=query)
        assert page.status_code == 200
        return [int(i) for i in re.findall(r'<tr class="[^"]*" data-id="(\d+)"', page.text)]

    assert found() == ids[::-1]
    assert found(tracking="vn000000002") == [ids[1]]
    assert found(review="confirmed") == [ids[0]]
    assert found(action="clear") == [ids[2]]
    top = store.parcel(ids[1])["top_class"]
    assert ids[1] in found(cls=top)
    hour_ago = Clock("Asia/Ho_Chi_Minh").local(time.time() - 3600).strftime("%Y-%m-%dT%H:%M")
    assert found(since=hour_ago) == ids[::-1] and found(until=hour_ago) == []
    assert client.get("/history", params={"since": "yesterday"}).status_code == 400


def test_history_and_audit_page_backwards(world):
    store, app, ids = world
    for seq in range(4, 60):
        add_parcel(store, seq, threat=False, photo=False)
    client = login(app, "emil")
    first = client.get("/history").text
    older = re.search(r'href="/history\?([^"]+)"', first).group(1)
    second = client.get("/history?" + html.unescape(older)).text
    shown = re.findall(r'data-id="(\d+)"', first + second)
    assert len(shown) == len(set(shown)) == 59
    for i in range(60):
        store.audit("system", "user-added", detail={"name": f"u{i}"})
    first = client.get("/audit").text
    older = re.search(r'href="/audit\?before_id=(\d+)"', first).group(1)
    second = client.get(f"/audit?before_id={older}").text
    assert "u59" in first and "u59" not in second and "u9<" not in first
    assert "u9;" in second or "u9</td>" in second


def test_the_stats_page_gives_the_figures_of_the_last_hour_and_day(world):
    store, app, ids = world
    store.decide(ids[0], "olga", "confirm")
    store.decide(ids[1], "olga", "clear")
    page = login(app, "olga").get("/stats").text
    assert "66.7 %" in page      # 2 alerts of 3 parcels
    assert "50.0 %" in page      # 1 confirmed of 2 reviewed
    assert page.count('class="parcels"') == 24


def test_the_feed_pushes_a_new_alert_and_the_lines_health(world):
    store, app, ids = world
    client = login(app, "olga")
    store.set_health("plc", False, {"last_heard_s": 2.5, "commands_lost": 1})
    store.set_health("scanner", True, {"capturing": True}, at=time.time() - 60)
    with client.websocket_connect(f"/ws/alerts?after_id={store.last_parcel_id()}") as feed:
        health = feed.receive_json()
        assert health["type"] == "health"
        assert "FAULT" in health["html"] and "NO REPORT" in health["html"]
        new = add_parcel(store, 7, weapon=True)
        add_parcel(store, 8, threat=False)        # no alert: not pushed
        message = feed.receive_json()
        while message["type"] != "alerts":
            message = feed.receive_json()
        [alert] = message["alerts"]
        assert alert["id"] == new and alert["weapon"] is True
        assert 'class="alert weapon"' in alert["html"]


def test_the_json_api_gives_alerts_after_an_id_and_health(world):
    store, app, ids = world
    store.set_health("detector", True, {"queue": 0})
    client = login(app, "olga")
    alerts = client.get("/api/alerts", params={"after_id": ids[0]}).json()
    assert [a["id"] for a in alerts["alerts"]] == [ids[1]] and alerts["last_id"] == ids[2]
    [component] = client.get("/api/health").json()["components"]
    assert component["component"] == "detector" and component["ok"] and not component["stale"]
