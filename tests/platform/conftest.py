"""`streamlit run server.py` as a child process on a free port, stopped by a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# settings the child must not inherit from whoever runs the tests
SETTING_VARIABLES = (
    "VLM_DB_PATH",
    "VLM_DEMO",
    "VLM_DEMO_EMULATOR_PORT",
    "VLM_GROUP_PREFIX",
    "VLM_SYNC_INTERVAL",
    "VLM_DB_MEMORY_LIMIT",
    "VLM_COOKIE_KEY",
    "VLM_SECRET_KEY",
    "VLM_MAX_LOGIN_ATTEMPTS",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _default_interrupt() -> None:
    """In the server child: SIGINT as an interactive shell leaves it. A test run started in the
    background inherits SIGINT ignored, and the server would then never see the interrupt it is
    stopped with."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServedApp:
    """The one server (UI, API, lifespan) over the given settings; secrets only from secrets."""

    def __init__(self, folder: Path, settings: dict[str, str], secrets: Path) -> None:
        self.folder = folder
        self.log_path = folder / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in SETTING_VARIABLES}
        self.env.update(settings, PYTHONUNBUFFERED="1")
        self.secrets = secrets
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServedApp:
        command = [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "server.py"),
            "--server.headless=true", f"--server.port={self.port}",
            "--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none", f"--secrets.files={self.secrets}",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_default_interrupt,
            )
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/_stcore/health", timeout=1).text == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not become healthy:\n{self.log()}")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def stop_with(self, sig: signal.Signals) -> int:
        """Send sig and return the exit status (fails when it does not exit within the bound)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit within {STOP_TIMEOUT:g} s of {sig.name}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """serve(settings, secrets=None) -> a started ServedApp; killed at the end if still running."""
    started: list[ServedApp] = []

    def start(settings: dict[str, str], secrets: Path | None = None) -> ServedApp:
        app = ServedApp(tmp_path, settings, secrets or tmp_path / "no-secrets.toml")
        started.append(app)
        return app.start()

    yield start
    for app in started:
        app.kill()
