"""Run the FlexNet emulator with uvicorn: in a background thread (tests, demo) or blocking (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from vlm.flexnet.emulator.app import create_app
from vlm.flexnet.emulator.state import EmulatorState, FixtureSource, read_fixture

STARTUP_TIMEOUT = 15.0
KEEP_ALIVE_SECONDS = 75


class RunningEmulator:
    """An emulator serving in a daemon thread; `url`, `state`, `stop()`, context manager."""

    def __init__(self, state: EmulatorState, server: uvicorn.Server, sock: socket.socket) -> None:
        self.state = state
        self._server = server
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.host = str(host)
        self.port = int(port)
        display_host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{display_host}:{self.port}"
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"flexnet-emulator-{self.port}",
            daemon=True,
        )

    def start(self) -> RunningEmulator:
        """Start serving and wait until /health answers."""
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"FlexNet emulator did not start on {self.url}")
            time.sleep(0.01)
        self._wait_for_health(deadline)
        return self

    def _wait_for_health(self, deadline: float) -> None:
        with httpx.Client(timeout=2.0) as client:
            while True:
                try:
                    if client.get(f"{self.url}/api/1.0/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"FlexNet emulator on {self.url} does not answer /health")
                time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket; proto must be IPPROTO_TCP or asyncio skips TCP_NODELAY (40 ms stalls)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _config(app: Any, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **extra,
    )


def start_emulator(
    fixture: FixtureSource = None,
    *,
    security: bool = True,
    admin_password: str = "admin",
    token_lifetime: int = 86400,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningEmulator:
    """Start an emulator on `host:port` (0 = a free port) in a daemon thread."""
    state = EmulatorState(
        read_fixture(fixture),
        security=security,
        admin_password=admin_password,
        token_lifetime=token_lifetime,
    )
    server = uvicorn.Server(_config(create_app(state), log_config=None))
    return RunningEmulator(state, server, _bind(host, port)).start()


def serve(
    fixture_path: str | Path | None,
    port: int = 7070,
    admin_password: str = "admin",
    security: bool = True,
    *,
    host: str = "127.0.0.1",
    token_lifetime: int = 86400,
) -> None:
    """Serve an emulator in the foreground until interrupted (for `python -m vlm emulator`)."""
    state = EmulatorState(
        read_fixture(fixture_path),
        security=security,
        admin_password=admin_password,
        token_lifetime=token_lifetime,
    )
    mode = "security on" if security else "security off"
    print(
        f"FlexNet emulator {state.instance_id} on http://{host}:{port} "
        f"({len(state.slices)} feature slices, {mode})",
        flush=True,
    )
    uvicorn.Server(_config(create_app(state), host=host, port=port)).run()
