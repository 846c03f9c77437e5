"""AppTest fixtures: demo emulators and a seeded demo database per test, caches cleared."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.signed_in import seed_signed_in
from vlm.context import ServiceContext
from vlm.demo import DEMO_USERS, prepare_demo_database, start_demo_emulators
from vlm.domain import Role
from vlm.flexnet.emulator.state import Checkpoint
from vlm.ui.navigation import PAGES_DIR
from vlm.ui.runtime import get_runtime

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
ENV_KEYS = ("VLM_COOKIE_KEY", "VLM_SECRET_KEY", "VLM_GROUP_PREFIX", "VLM_MAX_LOGIN_ATTEMPTS")


# What the demo's dashboard rightly warns about: its over-committed feature and its switched-off
# lab server (vlm.demo seeds an alert of every kind).
DEMO_ATTENTION = ("Attention: 1 over-committed", "1 server feature(s) have less licenses")


def unexpected_errors(at: AppTest) -> list[str]:
    """The page's error messages, apart from the demo's intended warnings."""
    return [e.value for e in at.error if not e.value.startswith(DEMO_ATTENTION)]


def demo_user(role: Role):
    return next(u for u in DEMO_USERS if u.role == role)


@pytest.fixture(scope="session")
def demo_emulators() -> Iterator[dict]:
    running = start_demo_emulators(None)
    yield running
    for emulator in running.values():
        emulator.stop()


# What each emulator held right after its template was seeded, by emulator URL: every test's
# private database copy starts beside emulators rolled back to it, whatever the tests before it
# reserved or released on them.
SEEDED_EMULATORS: dict[str, Checkpoint] = {}


def prepare_demo_template(path: Path, emulators: dict) -> Path:
    """Seed the demo database at path on these emulators and keep their seeded state."""
    prepare_demo_database(str(path), {n: e.url for n, e in emulators.items()})
    SEEDED_EMULATORS.update({e.url: e.state.checkpoint() for e in emulators.values()})
    return path


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory, demo_emulators) -> Path:
    return prepare_demo_template(
        tmp_path_factory.mktemp("demo") / "template.duckdb", demo_emulators
    )


@pytest.fixture
def demo_db(tmp_path, demo_template, demo_emulators, monkeypatch) -> Path:
    """A private copy of the seeded demo database, the emulators as they were when it was
    seeded, and the environment pointing the app at it."""
    for emulator in demo_emulators.values():
        emulator.state.rollback(SEEDED_EMULATORS[emulator.url])
    path = tmp_path / "vlm.duckdb"
    shutil.copy(demo_template, path)
    wal = demo_template.with_name(demo_template.name + ".wal")
    if wal.exists():
        shutil.copy(wal, path.with_name(path.name + ".wal"))
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VLM_DB_PATH", str(path))
    monkeypatch.setenv("VLM_DEMO", "1")
    monkeypatch.setenv("VLM_SYNC_INTERVAL", "3600")
    return path


@pytest.fixture(autouse=True)
def fresh_streamlit_caches() -> Iterator[None]:
    """Caches are process-global: release the runtime (scheduler, database) around each test."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def new_app(username: str | None = None) -> AppTest:
    """The whole app; signed in as username (seeded like streamlit-authenticator does)."""
    at = AppTest.from_file(APP, default_timeout=30)
    if username is not None:
        seed_signed_in(at.session_state, username)
    return at


@pytest.fixture
def app(demo_db):
    """A factory: app(username) -> AppTest that has run once (signed in when username given)."""

    def make(username: str | None = None) -> AppTest:
        at = new_app(username)
        at.run()
        assert not at.exception, at.exception
        return at

    return make


def open_page(at: AppTest, name: str) -> AppTest:
    """Switch to a page by its short name ('allocations') and run it."""
    at.switch_page(str(PAGES_DIR / f"{name}_page.py"))
    at.run()
    assert not at.exception, [(e.value, e.stack_trace) for e in at.exception]
    return at


def open_section(at: AppTest, key: str, value: object = True) -> AppTest:
    """Open a lazy expander (True) or a lazy tab (its label) by its key, as a click does, and
    run: their content runs only while open."""
    at.session_state[key] = value
    at.run()
    assert not at.exception, [(e.value, e.stack_trace) for e in at.exception]
    return at


def service_context() -> ServiceContext:
    """The running app's service context (same process, same cached runtime)."""
    return get_runtime().ctx


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    """Poll until predicate() is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
