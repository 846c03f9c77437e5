"""Render every page of the app with AppTest over a large estate (run in its own process).

`python -m bench.app_worker SPEC.json OUT.json`: SPEC gives database (a DuckDB path or a
PostgreSQL URL), repeats and manager, and optionally only: the url paths of the admin pages to
render (then the sign-in page is left out; the manager's grid is always rendered). The process
is the app process: it opens the database through the app's runtime (sync scheduler included),
so its peak RSS is the app's with the large estate loaded (on PostgreSQL the server's memory is
not in it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from vlm.dburl import is_postgres_url

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT_S = 900
SLOW_S = 10.0
Samples = list[float]


def _environment(database: str) -> None:
    """The app's settings: the database as VLM_DB_URL (PostgreSQL) or VLM_DB_PATH (DuckDB)."""
    for key in ("VLM_COOKIE_KEY", "VLM_SECRET_KEY", "VLM_GROUP_PREFIX", "VLM_DB_URL"):
        os.environ.pop(key, None)
    setting = "VLM_DB_URL" if is_postgres_url(database) else "VLM_DB_PATH"
    os.environ.update({setting: database, "VLM_DEMO": "1", "VLM_SYNC_INTERVAL": "86400"})


def share_script_cache() -> None:
    """One ScriptCache for every run, as the server's Runtime holds one for all sessions and
    reruns. AppTest makes a new one per run, so each run would compile the app's scripts again,
    with Streamlit's magic pass over their syntax trees: about 10 ms a run that the server pays
    once. It applies alike to the bare page the pages are compared with."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    app_test.ScriptCache = lambda: shared  # type: ignore[attr-defined]
    local_script_runner.ScriptCache = lambda: shared  # type: ignore[attr-defined]


def _new_app(username: str | None) -> Any:
    from streamlit.testing.v1 import AppTest

    from tests.app.signed_in import seed_signed_in

    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    if username is not None:
        seed_signed_in(at.session_state, username)
    return at


def _run(at: Any) -> float:
    started = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"page raised: {[e.value for e in at.exception]}")
    return elapsed


def _frames(at: Any) -> list[tuple[str, pd.DataFrame]]:
    found = [("data_editor", e.value) for e in at.data_editor]
    found += [("dataframe", e.value) for e in at.dataframe]
    return [(kind, frame) for kind, frame in found if isinstance(frame, pd.DataFrame)]


def _bare(frames: list[tuple[str, pd.DataFrame]], repeats: int) -> Samples:
    from streamlit.testing.v1 import AppTest

    from bench import bare_page

    bare_page.FRAMES[:] = frames
    at = AppTest.from_string(bare_page.SCRIPT, default_timeout=TIMEOUT_S)
    _run(at)
    return [_run(at) for _ in range(repeats)]


def _measure(at: Any, repeats: int) -> dict[str, Any]:
    """Warm-up run, then `repeats` timed runs (a page slower than SLOW_S is timed once)."""
    first = _run(at)
    samples = [first] if first > SLOW_S else [_run(at) for _ in range(repeats)]
    frames = _frames(at)
    return {
        "samples": samples,
        "first": first,
        "baseline": _bare(frames, len(samples)),
        "rows": max((len(f) for _, f in frames), default=0),
    }


STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _high_water_mark() -> int:
    """This process's own peak resident memory (VmHWM), in bytes.

    Not getrusage's ru_maxrss: Linux carries that across exec, so a worker started by a
    benchmark process of 700 MB reports 700 MB before it has allocated anything."""
    for line in STATUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class PhaseMemory:
    """The peak resident memory of each phase (the first run, the first sync, each page): the
    kernel's high-water mark is read and reset (clear_refs 5) at every change of phase, so a
    peak is charged to the phase that caused it and none between samples is missed."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.overall = 0
        self._phase = "start"

    def enter(self, phase: str) -> None:
        self._close()
        self._phase = phase

    def _close(self) -> None:
        peak = _high_water_mark()
        self.peaks[self._phase] = max(self.peaks.get(self._phase, 0), peak)
        self.overall = max(self.overall, peak)
        CLEAR_REFS.write_text("5", encoding="utf-8")

    def stop(self) -> dict[str, int]:
        self._close()
        return self.peaks


def _first_pass_done(scheduler: Any) -> bool:
    """The scheduler's first full pass and the alert pass that follows it are over."""
    return bool(scheduler.last_full_pass) and scheduler.last_alert_pass is not None


def _wait_for_first_sync() -> float:
    """The app's scheduler starts with a full pass and an alert pass; wait for both so that
    they do not run beside the first page and skew its timing."""
    from vlm.ui.runtime import get_runtime

    started = time.perf_counter()
    scheduler = get_runtime().scheduler
    deadline = time.monotonic() + TIMEOUT_S
    while scheduler is not None and not _first_pass_done(scheduler):
        if time.monotonic() > deadline:
            raise TimeoutError("the app's first sync pass did not finish")
        time.sleep(0.05)
    return time.perf_counter() - started


def render_all(spec: dict[str, Any]) -> dict[str, Any]:
    """Time every admin page (or those spec["only"] names), the sign-in page and the manager's
    large allocation grid."""
    from vlm.domain import Role
    from vlm.ui.navigation import pages_for

    _environment(spec["database"])
    share_script_cache()
    repeats = int(spec["repeats"])
    memory = PhaseMemory()
    pages: dict[str, Any] = {}
    at = _new_app("admin")
    memory.enter("the app's first run")
    first_run = _run(at)
    memory.enter("the app's first sync and alert pass")
    first_sync = _wait_for_first_sync()
    only = spec.get("only")
    for page in pages_for(Role.ADMIN):
        if only is not None and page.url_path not in only:
            continue
        at.switch_page(page.path)
        memory.enter(page.title_for(Role.ADMIN))
        pages[page.title_for(Role.ADMIN)] = _measure(at, repeats)
    if only is None:
        memory.enter("Sign in")
        pages["Sign in"] = _measure(_new_app(None), repeats)
    memory.enter("the manager's grid")
    manager = _new_app(spec["manager"])
    _run(manager)
    manager.switch_page(
        next(p.path for p in pages_for(Role.MANAGER) if p.url_path == "allocations")
    )
    grid = _measure(manager, repeats)
    return {
        "pages": pages,
        "grid": grid,
        "first_run_s": first_run,
        "first_sync_s": first_sync,
        "rss_end": psutil.Process().memory_info().rss,
        "rss_phases": memory.stop(),
        "rss_peak": memory.overall,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    result = render_all(spec)
    Path(sys.argv[2]).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
