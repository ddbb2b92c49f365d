"""`edge user` and the dashboard's start, as an engineer setting up a hub runs them."""

import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from edge.dashboard.auth import verify_password
from edge.store import Store


def edge(*args, stdin="", env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_users_are_added_with_a_password_from_stdin_and_listed(tmp_path):
    store = str(tmp_path / "store")
    added = edge("user", "add", "lan", "--role", "operator", "--store", store,
                 stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    assert verify_password(Store(store).user("lan")["password_hash"], "a long enough password")
    short = edge("user", "add", "minh", "--role", "operator", "--store", store, stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    again = edge("user", "add", "lan", "--role", "admin", "--store", store,
                 stdin="another long password\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    no_role = edge("user", "add", "minh", "--store", store, stdin="a long enough password\n")
    assert no_role.returncode == 2 and "--role" in no_role.stderr
    changed = edge("user", "passwd", "lan", "--store", store, stdin="a new long password\n")
    assert changed.returncode == 0, changed.stderr
    assert verify_password(Store(store).user("lan")["password_hash"], "a new long password")
    listed = edge("user", "list", "--store", store)
    assert listed.stdout.split() == ["lan", "operator", "en"]
    events = [r["event"] for r in Store(store).audit_log()]
    assert events[:2] == ["password-changed", "user-added"]


def test_edge_dashboard_needs_an_existing_store(tmp_path):
    result = edge("dashboard", "--store", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no store at" in result.stderr


@pytest.mark.slow
def test_edge_run_serves_the_dashboard_and_makes_a_first_admin(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"EDGE_STORE__DIR": str(tmp_path / "store"), "EDGE_DASHBOARD__ENABLED": "true",
           "EDGE_DASHBOARD__PORT": str(port), "EDGE_PIPELINE__DETECTOR": "ground-truth",
           "EDGE_CALIBRATION_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--duration", "8"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "made user 'admin' with the one-time password" in first, first
        assert proc.stdout.readline().strip() == f"dashboard: http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as page:
            assert page.status == 200
        # A second line on the same port stops at once, saying why.
        busy = edge("run", "--duration", "1", env=env)
        assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [u["name"] for u in Store(tmp_path / "store").users()] == ["admin"]
