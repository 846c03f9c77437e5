"""Property test: random admin / manager / analyst operations never break rules 1–4 of §3."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server
from vlm.config import Settings
from vlm.domain import PermissionDenied, VlmError
from vlm.secret_box import SecretBox
from vlm.services import allocations, pools, vlms
from vlm.services.context import ServiceContext
from vlm.store import open_database

FEATURES = [("cad", "1.0"), ("cad", "2.0"), ("sim", "1.0")]
HOSTS = ["0050569A0001", "0050569A0002", "0050569A0003", "0050569A0004"]
ACTORS = [ADMIN, MANAGER, OTHER_MANAGER, ANALYST]


class AccountingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        key = SecretBox.generate_key()
        path = str(Path(self.tmp.name) / "rules.duckdb")
        self.ctx = ServiceContext(
            open_database(path), Settings(db_path=path, secret_key=key), SecretBox(key)
        )
        add_people(self.ctx)
        add_server(self.ctx, "east", {FEATURES[0]: 8, FEATURES[1]: 3, FEATURES[2]: 5})
        add_server(self.ctx, "west", {FEATURES[0]: 4, FEATURES[2]: 2})
        self.ctx.db.write(
            lambda cur: cur.execute(
                "UPDATE server_features SET reserved_by_others = 1 WHERE feature_name = 'sim'"
            )
        )
        vlm_id = vlms.create_vlm(self.ctx, ADMIN, "base", [1, 2, 3, 4, 5])
        pools.create_pool(self.ctx, ADMIN, vlm_id, "a", MANAGER.username, {FEATURES[0]: 6})
        pools.create_pool(self.ctx, ADMIN, vlm_id, "b", OTHER_MANAGER.username, {FEATURES[0]: 3})
        self.shrunk: set[int] = set()
        self.pooled_at_shrink: dict[int, int] = {}

    def teardown(self) -> None:
        self.ctx.db.close()
        self.tmp.cleanup()

    def _snapshot(self) -> tuple:
        return (
            self.ctx.db.query("SELECT * FROM pool_portions ORDER BY ALL"),
            self.ctx.db.query("SELECT id, count, description, state FROM allocations ORDER BY id"),
            self.ctx.db.query("SELECT id, manager FROM pools ORDER BY id"),
        )

    def _pools(self) -> list[tuple[int, str]]:
        return self.ctx.db.query("SELECT id, manager FROM pools ORDER BY id")

    def _act(self, actor, pool_id: int, call) -> None:
        """Run a pool write; a manager on someone else's pool or an analyst must be refused."""
        manager = dict(self._pools()).get(pool_id)
        foreign = actor.role.value == "analyst" or (
            actor.role.value == "manager" and manager != actor.username
        )
        before = self._snapshot()
        try:
            call()
        except PermissionDenied:
            assert foreign, f"{actor} wrongly refused on pool {pool_id}"
            assert self._snapshot() == before, "a refused call changed data"
            event("refused: permission")
            return
        except VlmError:
            assert self._snapshot() == before, "a rejected call changed data"
            event("rejected: rule")
            return
        assert not foreign, f"{actor} acted on pool {pool_id} of {manager}"
        event("accepted")

    @rule(data=st.data())
    def create_vlm(self, data) -> None:
        free = [
            r[0]
            for r in self.ctx.db.query(
                "SELECT id FROM server_features WHERE id NOT IN "
                "(SELECT server_feature_id FROM vlm_features) ORDER BY id"
            )
        ]
        chosen = (
            data.draw(st.lists(st.sampled_from(free), min_size=1, unique=True)) if free else [1]
        )
        name = f"vlm{data.draw(st.integers(0, 3))}"
        with contextlib.suppress(VlmError):
            vlms.create_vlm(self.ctx, ADMIN, name, chosen)

    @rule(data=st.data())
    def create_pool(self, data) -> None:
        vlm_ids = [r[0] for r in self.ctx.db.query("SELECT id FROM vlms")]
        if not vlm_ids:
            return
        quantities = {
            f: data.draw(st.integers(0, 9))
            for f in data.draw(st.lists(st.sampled_from(FEATURES), min_size=1, unique=True))
        }
        manager = data.draw(st.sampled_from([MANAGER, OTHER_MANAGER])).username
        with contextlib.suppress(VlmError):
            pools.create_pool(
                self.ctx,
                ADMIN,
                data.draw(st.sampled_from(vlm_ids)),
                f"p{data.draw(st.integers(0, 5))}",
                manager,
                quantities,
            )

    @precondition(lambda self: bool(self._pools()))
    @rule(data=st.data())
    def resize_pool(self, data) -> None:
        pool_id = data.draw(st.sampled_from(self._pools()))[0]
        feature = data.draw(st.sampled_from(FEATURES))
        actor = data.draw(st.sampled_from(ACTORS))
        call = lambda: pools.update_pool(  # noqa: E731
            self.ctx, actor, pool_id, quantities={feature: data.draw(st.integers(0, 12))}
        )
        try:
            call()
        except PermissionDenied:
            assert actor is not ADMIN
        except VlmError:
            pass

    def _actor_for(self, data, pool_id: int):
        """Mostly the pool's own manager, sometimes anyone (to probe permissions)."""
        manager = dict(self._pools())[pool_id]
        own = next(a for a in ACTORS if a.username == manager)
        return data.draw(st.one_of(st.just(own), st.just(own), st.sampled_from(ACTORS)))

    @precondition(lambda self: bool(self._pools()))
    @rule(data=st.data())
    def allocate(self, data) -> None:
        pool_id = data.draw(st.sampled_from(self._pools()))[0]
        actor = self._actor_for(data, pool_id)
        feature = data.draw(st.one_of(st.just(FEATURES[0]), st.sampled_from(FEATURES)))
        host = data.draw(st.sampled_from(HOSTS))
        count = data.draw(st.one_of(st.integers(1, 3), st.integers(-1, 5)))
        self._act(
            actor,
            pool_id,
            lambda: allocations.allocate(
                self.ctx, actor, pool_id, feature, "ETHERNET", host, count
            ),
        )

    @rule(data=st.data())
    def edit_or_remove(self, data) -> None:
        rows = self.ctx.db.query(
            "SELECT id, pool_id FROM allocations WHERE state <> 'removing' ORDER BY id"
        )
        if not rows:
            return
        allocation_id, pool_id = data.draw(st.sampled_from(rows))
        actor = self._actor_for(data, pool_id)
        if data.draw(st.booleans()):
            count = data.draw(st.integers(0, 6))
            self._act(
                actor,
                pool_id,
                lambda: allocations.update_allocation(
                    self.ctx, actor, pool_id, allocation_id, count=count, description="edited"
                ),
            )
        else:
            self._act(
                actor,
                pool_id,
                lambda: allocations.remove_allocation(self.ctx, actor, pool_id, allocation_id),
            )

    @precondition(lambda self: bool(self._pools()))
    @rule(data=st.data())
    def delete_pool(self, data) -> None:
        pool_id = data.draw(st.sampled_from(self._pools()))[0]
        impact = pools.deletion_impact(self.ctx, ADMIN, pool_id)
        pools.delete_pool(self.ctx, ADMIN, pool_id, confirmed_allocations=impact["allocations"])

    @rule(data=st.data())
    def server_count_drops(self, data) -> None:
        """An inventory pull finds fewer licenses than before (rule 5)."""
        sf = data.draw(st.integers(1, 5))
        self.ctx.db.write(
            lambda cur: cur.execute(
                "UPDATE server_features SET total = GREATEST(total - 3, 0) WHERE id = ?", [sf]
            )
        )
        self.shrunk.add(sf)
        self.pooled_at_shrink[sf] = self._pooled().get(sf, 0)

    def _pooled(self) -> dict[int, int]:
        return dict(
            self.ctx.db.query(
                "SELECT server_feature_id, SUM(quantity)::INTEGER FROM pool_portions GROUP BY 1"
            )
        )

    @invariant()
    def no_server_feature_over_pooled(self) -> None:
        pooled = self._pooled()
        for sf, total, others in self.ctx.db.query(
            "SELECT id, total, reserved_by_others FROM server_features"
        ):
            if sf in self.shrunk:
                assert pooled.get(sf, 0) <= max(self.pooled_at_shrink[sf], total - others)
            else:
                assert pooled.get(sf, 0) <= total - others, f"server feature {sf} over-pooled"

    @invariant()
    def no_pool_over_allocated(self) -> None:
        rows = self.ctx.db.query(
            "SELECT a.pool_id, a.server_feature_id, SUM(a.count), MAX(pp.quantity) "
            "FROM allocations a LEFT JOIN pool_portions pp ON pp.pool_id = a.pool_id "
            "AND pp.server_feature_id = a.server_feature_id WHERE a.state <> 'removing' "
            "GROUP BY 1, 2"
        )
        for pool_id, sf, allocated, portion in rows:
            assert portion is not None and allocated <= portion, (pool_id, sf, allocated, portion)

    @invariant()
    def host_once_per_pool_feature(self) -> None:
        dupes = self.ctx.db.query(
            "SELECT pool_id, feature_name, feature_version, host_id, COUNT(*) FROM allocations "
            "WHERE state <> 'removing' GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1"
        )
        assert dupes == []

    @invariant()
    def feature_in_one_vlm(self) -> None:
        assert (
            self.ctx.db.query(
                "SELECT server_feature_id FROM vlm_features GROUP BY 1 HAVING COUNT(*) > 1"
            )
            == []
        )


AccountingMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAccountingRules = AccountingMachine.TestCase
