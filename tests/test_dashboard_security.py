"""The dashboard's security over a real SQLite store: every route refuses the anonymous and
the wrong role, POSTs need the CSRF token, logins are rate limited, cookies are locked down,
pictures cannot be reached outside the store."""

from __future__ import annotations

import re

import pytest
from dashboard_world import PASSWORD, add_parcel, make_store
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from edge.dashboard.app import create_app
from edge.dashboard.auth import ROLE_RANK, LoginLimiter, hash_password, verify_password

# Every route of the app, the least role it needs, and how it refuses the anonymous: a page
# redirects to /login, what scripts read answers 401. A route missing here fails the test
# below: a new route cannot go unguarded unnoticed.
ROUTES = {
    ("GET", "/login"): (None, None),
    ("POST", "/login"): (None, None),
    ("GET", "/healthz"): (None, None),
    ("POST", "/logout"): ("operator", "page"),
    ("POST", "/language"): ("operator", "page"),
    ("GET", "/"): ("operator", "page"),
    ("GET", "/parcels/{parcel_id}"): ("operator", "page"),
    ("POST", "/parcels/{parcel_id}/decide"): ("operator", "page"),
    ("GET", "/parcels/{parcel_id}/report"): ("operator", "page"),
    ("GET", "/history"): ("operator", "page"),
    ("GET", "/stats"): ("operator", "page"),
    ("GET", "/audit"): ("engineer", "page"),
    ("GET", "/users"): ("admin", "page"),
    ("GET", "/api/alerts"): ("operator", "api"),
    ("GET", "/api/health"): ("operator", "api"),
    ("GET", "/parcels/{parcel_id}/image/{name}"): ("operator", "api"),
    ("WS", "/ws/alerts"): ("operator", "api"),
}
ROLES = list(ROLE_RANK)


@pytest.fixture
def world(tmp_path):
    store = make_store(tmp_path / "store")
    confirmed = add_parcel(store, 1)
    store.decide(confirmed, "olga", "confirm")
    pending = add_parcel(store, 2)
    clean = add_parcel(store, 3, threat=False, photo=False)
    app = create_app(store)
    return store, app, {"confirmed": confirmed, "pending": pending, "clean": clean}


def login(app, name: str, password: str = PASSWORD, address: str = "testclient",
          expect: int = 303) -> TestClient:
    client = TestClient(app, client=(address, 50000))
    client.get("/login")
    response = client.post("/login", data={"name": name, "password": password,
                                           "csrf": client.cookies.get("edge_login_csrf")},
                           follow_redirects=False)
    assert response.status_code == expect, response.text
    return client


def csrf_of(client: TestClient) -> str:
    page = client.get("/").text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, those of included routers too; the
    static files' mount aside."""
    found = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            found |= {(method, route.path) for method in route.methods if method != "HEAD"}
        elif isinstance(route.original_route, APIWebSocketRoute):
            found.add(("WS", route.path))
        else:
            assert route.path == "/static", f"a route the table cannot judge: {route.path}"
    return found


def url_of(path: str, ids: dict) -> str:
    return path.format(parcel_id=ids["confirmed"], name="xray.jpg")


def call(client: TestClient, method: str, url: str, csrf: str = ""):
    if method == "POST":
        return client.post(url, data={"csrf": csrf, "kind": "note", "note": "n",
                                      "language": "en"}, follow_redirects=False)
    return client.get(url, follow_redirects=False)


def test_the_route_table_covers_every_route_of_the_app(world):
    _, app, _ = world
    assert app_routes(app) == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in ROUTES.items() if v[0]))
def test_an_anonymous_request_is_refused(world, method, path):
    _, app, ids = world
    _, kind = ROUTES[(method, path)]
    client = TestClient(app)
    if method == "WS":
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(path):
            pass
        assert closed.value.code == 4401
        return
    response = call(client, method, url_of(path, ids))
    if kind == "page":
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
    else:
        assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"),
                         sorted(k for k, v in ROUTES.items() if v[0] and v[0] != "operator"))
@pytest.mark.parametrize("role", ROLES)
def test_a_role_below_the_route_gets_403_and_one_at_or_above_it_passes(world, method, path,
                                                                       role):
    _, app, ids = world
    needed, _ = ROUTES[(method, path)]
    name = {"operator": "olga", "engineer": "emil", "admin": "ada"}[role]
    client = login(app, name)
    response = call(client, method, url_of(path, ids), csrf_of(client))
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        assert response.status_code == 403
    else:
        assert response.status_code == 200


@pytest.mark.parametrize(("method", "path"),
                         sorted(k for k, v in ROUTES.items() if v[0] == "operator"))
def test_an_operator_reaches_every_operator_route(world, method, path):
    _, app, ids = world
    client = login(app, "olga")
    if method == "WS":
        with client.websocket_connect(path) as socket:
            assert socket.receive_json()["type"] in ("alerts", "health")
        return
    response = call(client, method, url_of(path, ids), csrf_of(client))
    assert response.status_code in (200, 303)
    if response.status_code == 303:   # a POST that worked goes back to a page
        assert response.headers["location"] == ("/login" if path == "/logout" else
                                                f"/parcels/{ids['confirmed']}" if "decide" in path
                                                else "/")


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
@pytest.mark.parametrize("path", ["/parcels/{parcel_id}/decide", "/language", "/logout"])
def test_a_post_without_the_session_csrf_token_is_refused(world, path, csrf):
    store, app, ids = world
    client = login(app, "olga")
    data = {"kind": "note", "note": "sneaky", "language": "vi"}
    if csrf is not None:
        data["csrf"] = csrf
    response = client.post(url_of(path, ids), data=data, follow_redirects=False)
    assert response.status_code == 403
    assert all(d["note"] != "sneaky" for d in store.decisions(ids["confirmed"]))
    assert store.user("olga")["language"] == "en"
    assert client.get("/", follow_redirects=False).status_code == 200   # still logged in


def test_the_csrf_token_may_come_in_a_header(world):
    store, app, ids = world
    client = login(app, "olga")
    response = client.post(f"/parcels/{ids['pending']}/decide", data={"kind": "clear"},
                           headers={"X-CSRF-Token": csrf_of(client)}, follow_redirects=False)
    assert response.status_code == 303
    assert store.parcel(ids["pending"])["review"] == "cleared"


def test_another_sessions_csrf_token_does_not_pass(world):
    _, app, ids = world
    first, second = login(app, "olga"), login(app, "olga")
    response = second.post("/language", data={"language": "vi", "csrf": csrf_of(first)},
                           follow_redirects=False)
    assert response.status_code == 403


def test_a_login_form_needs_its_own_csrf_token(world):
    _, app, _ = world
    client = TestClient(app)
    client.get("/login")
    response = client.post("/login", data={"name": "olga", "password": PASSWORD,
                                           "csrf": "forged"}, follow_redirects=False)
    assert response.status_code == 403
    assert "edge_session" not in client.cookies


def test_five_failed_logins_per_name_then_429_even_with_the_right_password(world):
    store, app, _ = world
    for _ in range(5):
        login(app, "olga", "wrong", expect=401)
    login(app, "olga", expect=429)
    page = TestClient(app)
    page.get("/login")
    response = page.post("/login", data={"name": "olga", "password": PASSWORD,
                                         "csrf": page.cookies.get("edge_login_csrf")})
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    events = [row["event"] for row in store.audit_log()]
    assert events.count("login-failed") == 5 and "login-refused" in events


def test_failures_from_one_address_block_it_and_a_success_does_not_reset_that(world):
    _, app, _ = world
    address = "10.0.0.7"
    for name in ("nobody", "root", "admin", "olga"):
        login(app, name, "guess", address=address, expect=401)
    login(app, "emil", address=address)            # the fifth try succeeds...
    login(app, "ada", "guess", address=address, expect=401)
    login(app, "ada", address=address, expect=429)  # ...and the address is blocked after all
    login(app, "ada", address="10.0.0.8")           # another desk still logs in


def test_the_limit_forgets_failures_after_its_window():
    clock = [1000.0]
    limiter = LoginLimiter(attempts=2, window_s=300, now=lambda: clock[0])
    limiter.failed("olga", "a")
    limiter.failed("olga", "a")
    assert limiter.blocked("olga", "b")
    clock[0] += 301
    assert not limiter.blocked("olga", "a")


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_is_httponly_strict_and_secure_when_asked(tmp_path, secure):
    store = make_store(tmp_path)
    app = create_app(store, secure_cookies=secure)
    client = TestClient(app, base_url="https://testserver")
    client.get("/login")
    response = client.post("/login", data={"name": "olga", "password": PASSWORD,
                                           "csrf": client.cookies.get("edge_login_csrf")},
                           follow_redirects=False)
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("edge_session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=strict" in flags
    assert ("secure" in flags) == secure
    token = cookie.split(";")[0].split("=", 1)[1]
    stored = store.conn.execute("SELECT token_hash, expires_at - created_at AS life "
                                "FROM sessions").fetchall()
    assert len(stored) == 1 and token not in stored[0]["token_hash"]
    assert stored[0]["life"] == 12 * 3600


def test_a_session_expires_after_12_hours(tmp_path):
    store = make_store(tmp_path)
    clock = [1_000_000.0]
    app = create_app(store, now=lambda: clock[0])
    client = login(app, "olga")
    assert client.get("/", follow_redirects=False).status_code == 200
    clock[0] += 12 * 3600 + 1
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_on_the_server(world):
    store, app, _ = world
    client = login(app, "olga")
    token = client.cookies.get("edge_session")
    assert client.post("/logout", data={"csrf": csrf_of(client)},
                       follow_redirects=False).status_code == 303
    again = TestClient(app, cookies={"edge_session": token})
    assert again.get("/", follow_redirects=False).status_code == 303
    assert [r["event"] for r in store.audit_log(3)][:2] == ["logout", "login"]


@pytest.mark.parametrize("name", [
    "../../edge.db", "..%2F..%2Fedge.db", "%2e%2e/%2e%2e/edge.db", "edge.db", "xray.jpg/..",
    "%2E%2E", "%00xray.jpg", "xray.jpg%00", "XRAY.JPG", "thumbnail.png", "/etc/passwd",
    "..\\..\\edge.db"])
def test_image_paths_outside_the_known_names_are_404(world, name):
    _, app, ids = world
    client = login(app, "olga")
    response = client.get(f"/parcels/{ids['confirmed']}/image/{name}")
    assert response.status_code == 404
    assert b"SQLite" not in response.content


def test_pictures_a_parcel_lacks_and_parcels_that_do_not_exist_are_404(world):
    _, app, ids = world
    client = login(app, "olga")
    assert client.get(f"/parcels/{ids['clean']}/image/photo.jpg").status_code == 404
    assert client.get(f"/parcels/{ids['clean']}/image/xray.jpg").status_code == 200
    assert client.get("/parcels/999/image/xray.jpg").status_code == 404
    assert client.get("/parcels/999").status_code == 404


def test_passwords_are_argon2_hashes():
    hashed = hash_password("s3cret!")
    assert hashed.startswith("$argon2id$") and "s3cret" not in hashed
    assert verify_password(hashed, "s3cret!") and not verify_password(hashed, "s3cret")
    assert not verify_password("not a hash", "s3cret!")


def test_hash_password_is_importable_without_the_web_stack():
    import subprocess
    import sys
    code = ("import sys; from edge.dashboard.auth import hash_password; hash_password('x'); "
            "sys.exit(int('fastapi' in sys.modules or 'starlette' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_pages_carry_security_headers(world):
    _, app, _ = world
    response = login(app, "olga").get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_a_websocket_from_another_origin_is_refused(world):
    _, app, _ = world
    client = login(app, "olga")
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(
            "/ws/alerts", headers={"origin": "http://evil.example"}):
        pass
    assert closed.value.code == 4401


def test_login_redirect_goes_only_to_this_site(world):
    _, app, _ = world
    client = TestClient(app)
    client.get("/login")
    response = client.post("/login", data={"name": "olga", "password": PASSWORD,
                                           "csrf": client.cookies.get("edge_login_csrf"),
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_healthz_is_anonymous_and_says_nothing_more(world):
    _, app, _ = world
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}
