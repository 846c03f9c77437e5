"""The server's lifespan: before the first request it opens the runtime (database and sync
scheduler) and installs it for UI and API; on shutdown it stops the scheduler (on PostgreSQL a
leading replica gives the sync lead back, so another takes over at once) and closes the database
(DuckDB checkpoints its WAL). Unsafe settings open nothing: the refusal is recorded, the UI shows
it and the API answers 503. In demo mode with VLM_DEMO_EMULATOR_PORT set it also runs the demo's
emulated license servers and seeds the database."""

from __future__ import annotations

import asyncio
import logging
import os
import tomllib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from vlm.config import ConfigError, Settings, secrets_overrides
from vlm.context import ServiceContext
from vlm.runtime import Runtime, install_runtime, open_runtime, refuse_runtime
from vlm.services.harvesting import AFTER_SYNC_PASS

log = logging.getLogger(__name__)

DEMO_EMULATOR_PORT_ENV = "VLM_DEMO_EMULATOR_PORT"


def read_secret_files(paths: Iterable[Path]) -> dict[str, object]:
    """Settings from secrets.toml files read like st.secrets reads them: in order, a later file's
    top-level sections replacing an earlier one's; missing paths (and directories) are skipped."""
    merged: dict[str, Any] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} cannot be read: {exc}") from None
    return secrets_overrides(merged)


def load_settings(secret_files: Iterable[Path]) -> tuple[Settings | None, list[str]]:
    """The environment overlaid with the secrets files, or None and why they must be refused."""
    try:
        settings = Settings.from_env(**read_secret_files(secret_files))
    except ConfigError as exc:
        return None, [str(exc)]
    problems = settings.problems()
    return (None, problems) if problems else (settings, [])


def demo_emulator_port() -> int | None:
    """First port of the demo's emulators from VLM_DEMO_EMULATOR_PORT (0: free ports), or None
    when it is not set."""
    value = os.environ.get(DEMO_EMULATOR_PORT_ENV, "").strip()
    if not value:
        return None
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(
            f"{DEMO_EMULATOR_PORT_ENV} must be a port number, not {value!r}"
        ) from None
    if not 0 <= port <= 65533:
        raise ConfigError(f"{DEMO_EMULATOR_PORT_ENV} must be a port number, not {value!r}")
    return port


def start_demo(port: int) -> tuple[Callable[[ServiceContext], None], Callable[[], None]]:
    """Start the demo emulators; return the seeding step for the runtime and their stop."""
    from vlm.demo import seed_demo, start_demo_emulators

    emulators = start_demo_emulators(port or None)
    urls = {name: running.url for name, running in emulators.items()}
    for name, url in urls.items():
        log.info("demo license server %s: %s", name, url)

    def stop() -> None:
        for running in emulators.values():
            running.stop()

    return (lambda ctx: seed_demo(ctx, urls)), stop


async def _open(settings: Settings, stack: AsyncExitStack) -> Runtime:
    """The runtime of these settings, with the demo's emulators first when asked for."""
    port = demo_emulator_port()
    seed = None
    if port is not None and not settings.demo:
        log.warning("%s is ignored outside demo mode (VLM_DEMO=1)", DEMO_EMULATOR_PORT_ENV)
    elif port is not None:
        seed, stop = await asyncio.to_thread(start_demo, port)
        stack.callback(stop)
    return await asyncio.to_thread(open_runtime, settings, seed, AFTER_SYNC_PASS)


@asynccontextmanager
async def serve_runtime(secret_files: Iterable[Path]) -> AsyncIterator[Runtime | None]:
    """Install the runtime of these settings for as long as the server runs (None: refused)."""
    settings, problems = load_settings(secret_files)
    if settings is None:
        log.error("VLM refuses to start: %s", "; ".join(problems))
        refuse_runtime(problems)
        try:
            yield None
        finally:
            install_runtime(None)
        return
    async with AsyncExitStack() as stack:
        runtime = await _open(settings, stack)
        install_runtime(runtime)
        try:
            yield runtime
        finally:
            install_runtime(None)
            await asyncio.to_thread(runtime.close)
