"""The lifespan in this process: settings from secrets files, the runtime installed while the
server runs (or the refusal recorded), and the UI taking the server's runtime or refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import vlm.ui.runtime
from tests.platform.conftest import ROOT, SETTING_VARIABLES
from vlm.config import ConfigError, Settings
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.lifespan import demo_emulator_port, read_secret_files, serve_runtime
from vlm.runtime import (
    Runtime,
    current_runtime,
    install_runtime,
    open_runtime,
    refuse_runtime,
    runtime_refusal,
)
from vlm.services import users

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def clean_process(monkeypatch) -> Iterator[None]:
    """No settings from the caller's environment; no runtime or refusal left behind."""
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    st.cache_resource.clear()
    yield
    install_runtime(None)
    st.cache_resource.clear()


def run_lifespan(files: list[Path], inside) -> object:
    """Run serve_runtime(files) around inside(runtime) and return what inside returned."""

    async def main() -> object:
        async with serve_runtime(files) as runtime:
            return inside(runtime)

    # A thread of its own: browser tests earlier in the session leave an event loop running here.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, main()).result()


def test_secret_files_are_read_in_order_a_later_section_replacing_an_earlier(tmp_path) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('[auth]\ncookie_key = "k1"\n[vlm]\ngroup_prefix = "abc-"\ndemo = true\n')
    second.write_text('[vlm]\ngroup_prefix = "xyz-"\n')

    read = read_secret_files([first, tmp_path / "missing.toml", second])

    assert read == {"cookie_key": "k1", "group_prefix": "xyz-"}


def test_a_broken_secrets_file_is_named(tmp_path) -> None:
    broken = tmp_path / "secrets.toml"
    broken.write_text("[vlm\n")
    with pytest.raises(ConfigError, match="secrets.toml cannot be read"):
        read_secret_files([broken])


@pytest.mark.parametrize(("value", "port"), [("", None), ("0", 0), ("7071", 7071)])
def test_demo_emulator_port(monkeypatch, value: str, port: int | None) -> None:
    monkeypatch.setenv("VLM_DEMO_EMULATOR_PORT", value)
    assert demo_emulator_port() == port


@pytest.mark.parametrize("value", ["x", "-1", "70000"])
def test_a_demo_emulator_port_that_is_none_is_refused(monkeypatch, value: str) -> None:
    monkeypatch.setenv("VLM_DEMO_EMULATOR_PORT", value)
    with pytest.raises(ConfigError, match="VLM_DEMO_EMULATOR_PORT must be a port number"):
        demo_emulator_port()


def test_unsafe_settings_record_the_refusal_and_open_nothing(tmp_path, monkeypatch) -> None:
    db_path = tmp_path / "vlm.duckdb"
    monkeypatch.setenv("VLM_DB_PATH", str(db_path))

    seen = run_lifespan([], lambda runtime: (runtime, current_runtime(), runtime_refusal()))

    runtime, installed, refusal = seen
    assert runtime is None and installed is None
    assert any("Fernet key" in problem for problem in refusal)
    assert any("cookie key" in problem for problem in refusal)
    assert not db_path.exists()
    assert runtime_refusal() is None


def test_the_runtime_is_installed_while_serving_and_closed_after(tmp_path) -> None:
    secrets = tmp_path / "secrets.toml"
    db_path = tmp_path / "vlm.duckdb"
    secrets.write_text(f'[vlm]\ndemo = true\ndb_path = "{db_path}"\nsync_interval_seconds = 3600\n')

    def inside(runtime: Runtime) -> tuple[bool, bool]:
        return current_runtime() is runtime, runtime.scheduler.running

    installed, running = run_lifespan([secrets], inside)
    runtime_after = current_runtime()

    assert installed and running
    assert runtime_after is None
    assert not db_path.with_name(db_path.name + ".wal").exists()
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM license_servers").fetchone() == (0,)


@pytest.fixture
def served(tmp_path) -> Iterator[Runtime]:
    """A runtime installed as the server's lifespan would (demo settings, empty database)."""
    runtime = open_runtime(
        Settings.from_env(
            db_path=str(tmp_path / "vlm.duckdb"), demo=True, sync_interval_seconds=3600
        )
    )
    install_runtime(runtime)
    yield runtime
    install_runtime(None)
    runtime.close()


def no_second_runtime(settings: Settings) -> Runtime:
    raise AssertionError("the UI opened a runtime of its own")


def test_the_ui_signs_in_against_the_server_runtime(served: Runtime, monkeypatch) -> None:
    """The UI's own settings (no keys, the default database) would refuse; the server's serve."""
    monkeypatch.setattr(vlm.ui.runtime, "_open_runtime", no_second_runtime)
    users.add_user(served.ctx, SYSTEM_ACTOR, "zoe", Role.ANALYST, password="zoe-served-pw1")
    at = AppTest.from_file(APP, default_timeout=30).run()

    at.text_input[0].input("zoe")
    at.text_input[1].input("zoe-served-pw1")
    at.button[0].click()
    at.run()

    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["authentication_status"] is True
    assert at.title[0].value == "Dashboard"


def test_the_ui_shows_the_server_refusal_even_when_its_own_settings_are_safe(monkeypatch) -> None:
    monkeypatch.setenv("VLM_DEMO", "1")  # safe for the UI's own reading
    monkeypatch.setattr(vlm.ui.runtime, "_open_runtime", no_second_runtime)
    refuse_runtime(["the cookie key is missing"])

    at = AppTest.from_file(APP, default_timeout=30).run()

    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    assert "VLM refuses to start: the cookie key is missing" in error.value
    assert "Restart the server after changing the settings." in error.value
