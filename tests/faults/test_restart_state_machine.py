"""A hypothesis state machine interleaving server restarts (ids reused), foreign teams' writes,
VLM edits, lost responses, dropped connections and full passes. After every VLM step the
standing invariant holds: no foreign group, reservation or entry ever changes. At the end,
with the faults gone, two full passes converge the server to what VLM allocates."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.conftest import ADMIN
from tests.faults.conftest import create_foreign_group, foreign_snapshot, restart
from tests.sync.conftest import (
    DEFAULT_FEATURES,
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    control,
    desired_state,
    feature_id,
    remove,
    server_state,
    set_count,
)
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import Conflict
from vlm.flexnet import FlexNetClient, FlexNetError
from vlm.flexnet.emulator.server import start_emulator
from vlm.secret_box import SecretBox
from vlm.services import pools
from vlm.store import open_database
from vlm.sync import reconcile_server, sync_all

VLM_HOSTS = [("USER", "ann"), ("USER", "ben"), ("ETHERNET", "0050569A0001"), ("STRING", "rig-7")]
FOREIGN_HOSTS = ["zed", "yan", "ann"]  # "ann" collides with a VLM host on purpose
FEATURES = ["cad", "viz", "sim"]


class ServerUnderAttack(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="vlm-faults-"))
        key = SecretBox.generate_key()
        config = Settings(db_path=str(self.tmp / "t.duckdb"), secret_key=key, group_prefix=PREFIX)
        self.ctx = ServiceContext(open_database(config.db_path), config, SecretBox(key))
        self.emulator = start_emulator({"features": DEFAULT_FEATURES})
        self.api = FlexNetClient(self.emulator.url, username="admin", password="admin", retries=0)
        self.server = add_synced_server(self.ctx, self.emulator.url)
        self.sf = {f: feature_id(self.ctx, self.server, f) for f in FEATURES}
        self.pool = add_pool(self.ctx, {sf: 12 for sf in self.sf.values()})
        self.allocations: dict[tuple[str, str, str], int] = {}
        self.foreign_names = 0
        self.baseline = foreign_snapshot(self.emulator)

    def teardown(self) -> None:
        try:
            self.api.close()
            self.emulator.stop()
            self.ctx.db.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- foreign teams and the server itself (they move the baseline) --------------------

    @rule(
        host=st.sampled_from(FOREIGN_HOSTS),
        feature=st.sampled_from(FEATURES),
        count=st.integers(1, 4),
    )
    def foreign_team_creates_a_group(self, host: str, feature: str, count: int) -> None:
        self.foreign_names += 1
        # refused (host taken, not enough counts) or its response was lost: both are fine
        with contextlib.suppress(FlexNetError):
            create_foreign_group(self.api, f"team-{self.foreign_names}", host, {feature: count})
        self.baseline = foreign_snapshot(self.emulator)

    @precondition(lambda self: bool(self.baseline))
    @rule(pick=st.integers(0, 1_000))
    def foreign_team_deletes_a_group(self, pick: int) -> None:
        ids = sorted(self.baseline)
        with contextlib.suppress(FlexNetError):
            self.api.delete_group(ids[pick % len(ids)])
        self.baseline = foreign_snapshot(self.emulator)

    @rule(new_instance_id=st.booleans())
    def server_restarts_empty(self, new_instance_id: bool) -> None:
        restart(self.emulator, new_instance_id=new_instance_id)
        self.baseline = foreign_snapshot(self.emulator)

    @rule()
    def next_write_loses_its_response(self) -> None:
        control(self.emulator, "POST", "faults", {"lose_write_responses": 1})

    # -- VLM ------------------------------------------------------------------------------

    @rule(
        host=st.sampled_from(VLM_HOSTS), feature=st.sampled_from(FEATURES), count=st.integers(1, 3)
    )
    def manager_allocates_or_edits(self, host: tuple[str, str], feature: str, count: int) -> None:
        key = (*host, feature)
        existing = self.allocations.get(key)
        try:
            if existing is None:
                self.allocations[key] = allocate(
                    self.ctx, self.pool, self.sf[feature], host[1], count, host[0]
                )
            else:
                set_count(self.ctx, existing, count)
        except Conflict as refused:
            # the one refusal a pool that always has room allows: other teams' reservations,
            # read by a full pass, left the feature over-committed (no new or grown counts)
            assert self.over_committed(feature), refused.message

    @precondition(lambda self: bool(self.allocations))
    @rule(pick=st.integers(0, 1_000))
    def manager_removes(self, pick: int) -> None:
        keys = sorted(self.allocations)
        remove(self.ctx, self.allocations.pop(keys[pick % len(keys)]))

    @rule(drop=st.sampled_from([0.0, 0.0, 0.3]))
    def reconcile_after_a_save(self, drop: float) -> None:
        if drop:
            control(self.emulator, "POST", "faults", {"drop_rate": drop, "seed": 7})
        reconcile_server(self.ctx, self.server, force=True, workers=2)
        if drop:
            control(self.emulator, "POST", "faults", {"drop_rate": 0.0})

    @rule()
    def full_pass(self) -> None:
        sync_all(self.ctx)

    def over_committed(self, feature: str) -> bool:
        figures = pools.pool_features(self.ctx, ADMIN, self.pool)
        return bool(figures.loc[figures["feature_name"] == feature, "over_committed"].item())

    @invariant()
    def no_foreign_object_ever_changes(self) -> None:
        assert foreign_snapshot(self.emulator) == self.baseline

    def check_convergence(self) -> None:
        """Faults off, two full passes: the server holds exactly what VLM allocates."""
        control(self.emulator, "DELETE", "faults")
        sync_all(self.ctx)
        sync_all(self.ctx)
        assert foreign_snapshot(self.emulator) == self.baseline
        left = dict(self.ctx.db.query("SELECT state, count(*) FROM allocations GROUP BY state"))
        assert set(left) <= {"applied", "failed"}, left
        assert server_state(self.emulator) == desired_state(self.ctx, self.server)


class ConvergingMachine(ServerUnderAttack):
    def teardown(self) -> None:
        try:
            self.check_convergence()
        finally:
            super().teardown()


ConvergingMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_restarts_foreign_writes_and_faults_never_touch_foreign_groups = ConvergingMachine.TestCase
