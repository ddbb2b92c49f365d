"""Test settings: CI runs hypothesis derandomised, so a run is repeatable line for line."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def earlier_head_layout():
    """Turns a ParcelNet state dict into the layout checkpoints were saved in before the head
    had a batch norm per level: one norm per tower layer for all levels (level 0's is kept)."""
    def convert(state: dict) -> dict:
        old = {}
        for key, value in state.items():
            if key.startswith(("tower.", "cls_tower.")):
                if ".norms." in key and ".norms.0." not in key:
                    continue
                key = key.replace(".conv.", ".0.").replace(".norms.0.", ".1.")
            old[key] = value
        return old
    return convert


@pytest.fixture(scope="session", autouse=True)
def store_and_dashboard_kept_apart(tmp_path_factory):
    """``edge run`` keeps a parcel store and serves the dashboard by default: in tests (and the
    subprocesses they start) the store goes to a scratch folder and the dashboard stays off,
    unless a test asks for them."""
    saved = {k: os.environ.get(k) for k in ("EDGE_STORE__DIR", "EDGE_DASHBOARD__ENABLED")}
    os.environ["EDGE_STORE__DIR"] = str(tmp_path_factory.mktemp("store"))
    os.environ["EDGE_DASHBOARD__ENABLED"] = "false"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
