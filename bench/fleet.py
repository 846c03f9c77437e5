"""The emulated license servers of an estate, served from a separate process.

`python -m bench.fleet DIR` starts one emulator per fixture file in DIR, prints one JSON line
{server name: url} and serves until its stdin closes. Running them outside the benchmark
process keeps the emulators' request handling off the measured process's interpreter lock,
as real license servers would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from bench.fixtures import fixture_paths

ADMIN_PASSWORD = "admin"


class Fleet:
    """Context manager around the emulator process; `urls` maps server name to base URL."""

    def __init__(self, fixture_dir: Path) -> None:
        self.fixture_dir = fixture_dir
        self.urls: dict[str, str] = {}
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Fleet:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", str(self.fixture_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(timeout=10)
            raise RuntimeError(f"the emulator fleet did not start (exit {self._proc.returncode})")
        self.urls = json.loads(line)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def serve(fixture_dir: Path) -> None:
    """Start the emulators, announce their URLs, block until stdin closes, stop them."""
    from vlm.flexnet.emulator.server import start_emulator

    running = {
        name: start_emulator(path, admin_password=ADMIN_PASSWORD)
        for name, path in fixture_paths(fixture_dir).items()
    }
    try:
        print(json.dumps({name: emu.url for name, emu in running.items()}), flush=True)
        sys.stdin.read()
    finally:
        for emu in running.values():
            emu.stop()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
