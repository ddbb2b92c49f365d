"""Property test over the dashboard's OpenAPI schema: requests made up by schemathesis, sent
with a live session (cookie and CSRF header), never get a server error."""

from __future__ import annotations

import tempfile

import pytest
import schemathesis
from dashboard_world import add_parcel, make_store
from hypothesis import HealthCheck, settings
from test_dashboard_security import csrf_of, login

from edge.dashboard.app import create_app
from edge.store import Store


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("store"))
    confirmed = add_parcel(store, 1)
    store.decide(confirmed, "ada", "confirm")
    add_parcel(store, 2)
    add_parcel(store, 3, threat=False, photo=False)
    app = create_app(store)
    client = login(app, "ada")    # the admin reaches every route
    return app, client.cookies.get("edge_session"), csrf_of(client)


def app_schema() -> dict:
    """The app's OpenAPI schema (it does not depend on what the store holds)."""
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        document = create_app(store).openapi()
        store.close()
    return document


schema = schemathesis.openapi.from_dict(app_schema())


@pytest.mark.slow
@schema.exclude(path="/logout").exclude(path="/login", method="POST").parametrize()
@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, dashboard):
    app, session, csrf = dashboard
    response = case.call(app=app, cookies={"edge_session": session},
                         headers={"X-CSRF-Token": csrf})
    assert response.status_code < 500, case.as_curl_command()
    assert response.status_code not in (401, 403), "the session should reach every route"
