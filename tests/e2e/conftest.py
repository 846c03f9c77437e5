"""Browser end-to-end fixtures: emulators in this process, the server as a `streamlit run server.py`
child."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.sso import SsoProvider, sso_secrets
from vlm.demo import prepare_demo_database, start_demo_emulators

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 60.0
# what a page must show after an action may wait behind a cold start or a busy machine
expect.set_options(timeout=20_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """`streamlit run server.py` (UI, API and the lifespan that owns the database and the sync
    scheduler) in demo mode (its demo keys are the ones the database was seeded with) on a free
    port over a given database; restartable. A .streamlit/secrets.toml of the checkout is not
    read: its keys or settings would not match the seeded database."""

    def __init__(self, db_path: Path, log_path: Path, secrets_file: Path | None = None) -> None:
        self.db_path = db_path
        self.log_path = log_path
        self.port = free_port()
        self.secrets_file = secrets_file or log_path.parent / "no-secrets.toml"
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self._proc is None or self._proc.poll() is not None:
            self.start()
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "VLM_DB_PATH": str(self.db_path),
            "VLM_DEMO": "1",
            "VLM_SYNC_INTERVAL": "2",
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "server.py"),
            "--server.headless=true", f"--server.port={self.port}",
            "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
            f"--secrets.files={self.secrets_file}",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        health = f"http://127.0.0.1:{self.port}/_stcore/health"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"streamlit exited; see {self.log_path}")
            try:
                if httpx.get(health, timeout=1).text == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"streamlit did not become healthy; see {self.log_path}")

    def stop(self) -> None:
        """Stop the app (and so release the DuckDB file for inspection)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None


@pytest.fixture(scope="session")
def emulators() -> Iterator[dict]:
    running = start_demo_emulators(None)
    yield running
    for emulator in running.values():
        emulator.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run under plain pytest; they skip only when chromium is missing."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"browser tests need Debian's chromium at {CHROMIUM}")
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, emulators) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("e2e")
    db_path = folder / "vlm.duckdb"
    prepare_demo_database(str(db_path), {n: e.url for n, e in emulators.items()})
    server = AppServer(db_path, folder / "streamlit.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sso_provider() -> Iterator[SsoProvider]:
    """The mock OpenID provider on loopback (its identities are set by each test)."""
    provider = SsoProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def sso_server(tmp_path_factory, emulators, sso_provider) -> Iterator[AppServer]:
    """The demo app with single sign-on through the mock provider (two providers: one creates
    unknown users, one refuses them), on its own database."""
    folder = tmp_path_factory.mktemp("e2e-sso")
    db_path = folder / "vlm.duckdb"
    prepare_demo_database(str(db_path), {n: e.url for n, e in emulators.items()})
    secrets_file = folder / "secrets.toml"
    server = AppServer(db_path, folder / "streamlit.log", secrets_file)
    secrets_file.write_text(sso_secrets(f"http://127.0.0.1:{server.port}", sso_provider.url))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {
        **browser_context_args,
        "viewport": {"width": 1400, "height": 1000},
        "accept_downloads": True,
    }


ARTIFACTS = ROOT / "test-results" / "e2e"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed browser test: a screenshot of every open page and the app log's tail."""
    report = yield
    if report.when == "call" and report.failed and item.get_closest_marker("e2e"):
        save_failure_artifacts(item)
    return report


def save_failure_artifacts(item: pytest.Item) -> None:
    name = item.name.replace("/", "_").replace("[", "_").replace("]", "")
    folder = ARTIFACTS / f"{name}-{time.strftime('%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    browser = item.funcargs.get("browser")
    if browser is not None:
        for c, context in enumerate(browser.contexts):
            for p, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(folder / f"context{c}_page{p}.png"), full_page=True)
                except Exception as error:  # a closed or crashed page must not hide the failure
                    (folder / f"context{c}_page{p}.txt").write_text(repr(error))
    server = item.funcargs.get("app_server") or item.funcargs.get("sso_server")
    if server is not None and server.log_path.exists():
        tail = server.log_path.read_text(errors="replace").splitlines()[-200:]
        (folder / "streamlit.log").write_text("\n".join(tail))
