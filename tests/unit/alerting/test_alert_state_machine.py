"""State-machine test of fire and clear: pools fill and empty, the rule is switched off and on,
passes run in any order. After every pass the open alerts are exactly the pools whose condition
holds under an enabled rule; each episode has one alert row, one 'fired' message, and one
'cleared' message unless the rule was off when it ended."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.conftest import ADMIN, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.alerting.evaluate import evaluate_alerts
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.secret_box import SecretBox
from vlm.services import alerts, allocations, pools, vlms
from vlm.store import open_database

CAD = ("cad", "1.0")
FULL, EMPTY = 3, 10  # pool quantities: 2 allocated of 3 holds the 50% rule, of 10 it does not


class AlertEpisodes(RuleBasedStateMachine):
    @initialize()
    def estate(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        path = str(Path(self.folder.name) / "vlm.duckdb")
        key = SecretBox.generate_key()
        self.ctx = ServiceContext(
            open_database(path), Settings(db_path=path, secret_key=key), SecretBox(key)
        )
        add_people(self.ctx)
        add_server(self.ctx, "east", {CAD: 100})
        vlm_id = vlms.create_vlm(self.ctx, ADMIN, "Engineering", feature_ids(self.ctx))
        self.pools = {}
        for name, manager in (("Design", MANAGER), ("Build", OTHER_MANAGER)):
            pool_id = pools.create_pool(
                self.ctx, ADMIN, vlm_id, name, manager.username, {CAD: EMPTY}
            )
            allocations.allocate(
                self.ctx, manager, pool_id, CAD, "ETHERNET", f"00505600{pool_id:04X}", 2
            )
            self.pools[pool_id] = False
        self.rule_id = alerts.create_rule(
            self.ctx,
            ADMIN,
            name="half full",
            kind="pool_nearly_full",
            threshold=50,
            destinations="json://127.0.0.1:9/hook",
        )
        self.enabled = True
        self.open: set[int] = set()
        self.episodes = 0
        self.cleared_with_message = 0

    def teardown(self) -> None:
        if hasattr(self, "ctx"):
            self.ctx.db.close()
            self.folder.cleanup()

    @rule(pool=st.sampled_from([0, 1]), full=st.booleans())
    def fill_or_empty(self, pool: int, full: bool) -> None:
        pool_id = sorted(self.pools)[pool]
        quantity = FULL if full else EMPTY
        self.ctx.db.write(
            lambda cur: cur.execute(
                "UPDATE pool_portions SET quantity = ? WHERE pool_id = ?", [quantity, pool_id]
            )
        )
        self.pools[pool_id] = full

    @rule(enabled=st.booleans())
    def switch_rule(self, enabled: bool) -> None:
        alerts.set_rule_enabled(self.ctx, ADMIN, self.rule_id, enabled)
        self.enabled = enabled

    @rule()
    def run_pass(self) -> None:
        evaluate_alerts(self.ctx)
        holding = {p for p, full in self.pools.items() if full} if self.enabled else set()
        self.episodes += len(holding - self.open)
        if self.enabled:
            self.cleared_with_message += len(self.open - holding)
        self.open = holding
        stored = self.ctx.db.query(
            "SELECT subject FROM alerts WHERE rule_id = ? AND cleared_at IS NULL", [self.rule_id]
        )
        assert sorted(str(s) for (s,) in stored) == sorted(f"pool:{p}" for p in holding)

    @invariant()
    def one_row_and_one_message_per_episode(self) -> None:
        if not hasattr(self, "ctx"):
            return
        rows = self.ctx.db.scalar("SELECT count(*) FROM alerts WHERE rule_id = ?", [self.rule_id])
        events = dict(
            self.ctx.db.query(
                "SELECT event, count(*) FROM alert_deliveries WHERE rule_id = ? GROUP BY event",
                [self.rule_id],
            )
        )
        assert rows == self.episodes
        assert events.get("fired", 0) == self.episodes
        assert events.get("cleared", 0) == self.cleared_with_message


AlertEpisodes.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAlertEpisodes = AlertEpisodes.TestCase
