"""`kill -9` of `python -m vlm sync` in the middle of a pass, then a rerun that converges."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import database_setting
from tests.faults.conftest import create_foreign_group, foreign_snapshot
from tests.sync.conftest import (
    DEFAULT_FEATURES,
    PREFIX,
    add_pool,
    add_synced_server,
    allocate_many,
    by_host,
    control,
    desired_state,
    emulator_groups,
    feature_id,
    server_state,
    states,
)
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator.server import start_emulator
from vlm.secret_box import SecretBox
from vlm.store import open_database

HOSTS = 40
ROOT = Path(__file__).resolve().parents[2]


def _sync(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """`python -m vlm sync` run outside the checkout, so a developer's secrets.toml is not read."""
    return subprocess.Popen(
        [sys.executable, "-m", "vlm", "sync"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _owned_groups(emulator) -> int:
    return sum(1 for g in emulator_groups(emulator) if g["name"].startswith(PREFIX))


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("batch_hosts", "written"),
    [("0", 5), ("8", 1)],
    ids=["a-group-per-host", "batch-groups"],
)
def test_kill_9_in_the_middle_of_a_pass_then_a_rerun_converges(
    tmp_path, db_target, batch_hosts: str, written: int
) -> None:
    """Killed once `written` groups reached the server (hosts placed one group each, or in
    batch groups of 8), before the pass recorded anything: the rerun finds what was written."""
    key = SecretBox.generate_key()
    database = database_setting(db_target)
    config = Settings(**database, secret_key=key, group_prefix=PREFIX)
    env = {
        **os.environ,
        **{f"VLM_{name.upper()}": value for name, value in database.items()},
        "VLM_SECRET_KEY": key,
        "VLM_COOKIE_KEY": secrets.token_urlsafe(48),
        "VLM_GROUP_PREFIX": PREFIX,
        "VLM_SYNC_BATCH_HOSTS": batch_hosts,
        "PYTHONPATH": str(ROOT),
    }
    with start_emulator({"features": DEFAULT_FEATURES}) as emulator:
        ctx = ServiceContext(open_database(db_target), config, SecretBox(key))
        server = add_synced_server(ctx, emulator.url)
        cad = feature_id(ctx, server, "cad")
        pool = add_pool(ctx, {cad: HOSTS})
        allocate_many(ctx, pool, cad, [f"host-{i:02d}" for i in range(HOSTS)], 1, "USER")
        with FlexNetClient(emulator.url, username="admin", password="admin") as api:
            create_foreign_group(api, "other-team", "zoe", {"cad": 2})
        foreign = foreign_snapshot(emulator)
        ctx.db.close()

        control(
            emulator, "POST", "faults", {"latency_ms": 150, "slow_paths": ["reservationgroups"]}
        )
        first = _sync(env, tmp_path)
        try:
            reached = _wait_until(lambda: _owned_groups(emulator) >= written, 60)
            assert reached, "no write reached"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        assert written <= _owned_groups(emulator) < HOSTS

        control(emulator, "DELETE", "faults")
        rerun = _sync(env, tmp_path)
        output, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, output

        ctx = ServiceContext(open_database(db_target), config, SecretBox(key))
        try:
            assert states(ctx) == {"applied": HOSTS}
            assert by_host(server_state(emulator)) == by_host(desired_state(ctx, server))
        finally:
            ctx.db.close()
        assert foreign_snapshot(emulator) == foreign
