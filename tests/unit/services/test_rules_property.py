"""Property test: random admin / manager / analyst operations keep architecture.md §3 rules 1–5, 7.

A model reads the stored rows before each call and predicts its outcome from the rules alone:
allowed and valid calls must succeed (with the predicted effect and an audit row), invalid
ones must be refused with a rule error, and calls by someone without the right (including a
session whose user was demoted since) must raise PermissionDenied. Every refused call must
leave every table as it was (issue 14, item 5).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import NamedTuple

from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import Actor, NotFound, PermissionDenied, Role, VlmError
from vlm.secret_box import SecretBox
from vlm.services import allocations, pools, vlms
from vlm.store import open_database

FeatureKey = tuple[str, str]
FEATURES: list[FeatureKey] = [("cad", "1.0"), ("cad", "2.0"), ("sim", "1.0")]
HOSTS = ["0050569A0001", "0050569A0002", "0050569A0003", "0050569A0004"]
STORED_ROLES = {a.username: a.role for a in (ADMIN, MANAGER, OTHER_MANAGER, ANALYST)}
# bob's session from before a demotion: the Actor says admin, the users table says manager
STALE_ADMIN = Actor(MANAGER.username, Role.ADMIN)
ACTORS = [ADMIN, MANAGER, OTHER_MANAGER, ANALYST, STALE_ADMIN]
ADMIN_PROBES = [ADMIN, ADMIN, MANAGER, ANALYST, STALE_ADMIN]
SNAPSHOT_TABLES = ("allocations", "pool_portions", "pools", "vlms", "vlm_features", "audit_log")
# every row of every table in one query (a step runs it twice, so it is kept to one)
SNAPSHOT_SQL = "SELECT " + ", ".join(
    f"(SELECT list(t ORDER BY t) FROM {table} t)" for table in SNAPSHOT_TABLES
)


class Row(NamedTuple):
    """One stored allocation, as the model reads it."""

    pool_id: int
    server_feature_id: int
    feature_name: str
    feature_version: str
    host_id: str
    count: int
    state: str

    @property
    def live(self) -> bool:
        return self.state != "removing"


class Verdict(Enum):
    """What the rules say a call must do."""

    ACCEPT = "accept"
    REFUSE = "refuse"  # a rule error (ValidationError, Conflict, NotFound), nothing written
    DENY = "deny"  # PermissionDenied, nothing written


@dataclass(frozen=True)
class Portion:
    """One (pool, server feature) portion as the rules see it, computed from raw rows."""

    server_feature_id: int
    server_name: str
    feature: FeatureKey
    quantity: int
    allocated: int
    over_committed: bool

    @property
    def room(self) -> int:
        return self.quantity - self.allocated


class Estate:
    """The stored rows read before a call, and the rule figures derived from them in Python."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.server_features = {
            sf: (server, (name, version), total, others)
            for sf, server, name, version, total, others in ctx.db.query(
                "SELECT sf.id, s.name, sf.feature_name, sf.feature_version, sf.total, "
                "sf.reserved_by_others FROM server_features sf "
                "JOIN license_servers s ON s.id = sf.server_id"
            )
        }
        self.exposed = dict(ctx.db.query("SELECT server_feature_id, vlm_id FROM vlm_features"))
        self.vlm_names = {r[0] for r in ctx.db.query("SELECT name FROM vlms")}
        self.pools = {
            pool_id: (vlm_id, name, manager)
            for pool_id, vlm_id, name, manager in ctx.db.query(
                "SELECT id, vlm_id, name, manager FROM pools"
            )
        }
        self.portions = {
            (pool_id, sf): quantity
            for pool_id, sf, quantity in ctx.db.query(
                "SELECT pool_id, server_feature_id, quantity FROM pool_portions"
            )
        }
        self.allocations = {
            row[0]: Row(*row[1:])
            for row in ctx.db.query(
                "SELECT id, pool_id, server_feature_id, feature_name, feature_version, host_id, "
                "count, state FROM allocations"
            )
        }

    def pooled(self, sf: int) -> int:
        return sum(q for (_, s), q in self.portions.items() if s == sf)

    def limit(self, sf: int) -> int:
        """total − reserved_by_others: the most all pools together may hold."""
        _, _, total, others = self.server_features[sf]
        return total - others

    def over_committed(self, sf: int) -> bool:
        return self.pooled(sf) > self.limit(sf)

    def allocated(self, pool_id: int, sf: int) -> int:
        return sum(
            a.count
            for a in self.allocations.values()
            if a.pool_id == pool_id and a.server_feature_id == sf and a.live
        )

    def pool_portions(self, pool_id: int, feature: FeatureKey) -> list[Portion]:
        return [
            Portion(
                sf,
                self.server_features[sf][0],
                feature,
                quantity,
                self.allocated(pool_id, sf),
                self.over_committed(sf),
            )
            for (pid, sf), quantity in self.portions.items()
            if pid == pool_id and self.server_features[sf][1] == feature
        ]

    def vlm_server_features(self, vlm_id: int, feature: FeatureKey) -> list[int]:
        return [
            sf
            for sf, owner in self.exposed.items()
            if owner == vlm_id and self.server_features[sf][1] == feature
        ]

    def healthy_poolable(self, vlm_id: int, feature: FeatureKey) -> int:
        """What a pool of this VLM can still gain of a feature (over-committed servers give 0)."""
        return sum(
            max(self.limit(sf) - self.pooled(sf), 0)
            for sf in self.vlm_server_features(vlm_id, feature)
            if not self.over_committed(sf)
        )

    def live_allocation(self, allocation_id: int) -> Row | None:
        row = self.allocations.get(allocation_id)
        return row if row is not None and row.live else None


def placement(portions: list[Portion], count: int) -> Portion | None:
    """Where rule 3 puts a new allocation: the healthy portion with most room, then by name."""
    fitting = [p for p in portions if not p.over_committed and p.room >= count]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (-p.room, p.server_name))


def near(*edges: int) -> st.SearchStrategy[int]:
    """A number at or just past one of the edges the rules draw, else a small one."""
    at_edges = sorted({e + d for e in edges for d in (0, 1)})
    small = st.integers(-1, 6)
    return st.one_of(st.sampled_from(at_edges), small) if at_edges else small


def writes_pool(role: Role, username: str, manager: str) -> bool:
    """Rule 4: admins write any pool, managers only their own, analysts none."""
    return role is Role.ADMIN or (role is Role.MANAGER and username == manager)


def pool_writer(actor: Actor, manager: str) -> bool:
    """Passes both checks: the Actor's role at the door, the stored role inside the write."""
    return writes_pool(actor.role, actor.username, manager) and writes_pool(
        STORED_ROLES[actor.username], actor.username, manager
    )


def admin_verdict(actor: Actor, malformed: bool, valid: bool) -> Verdict:
    """An admin-only call: refused at the door by the Actor's role, then malformed input is
    refused, then the stored role is checked inside the write, then the rules."""
    if actor.role is not Role.ADMIN:
        return Verdict.DENY
    if malformed:
        return Verdict.REFUSE
    if STORED_ROLES[actor.username] is not Role.ADMIN:
        return Verdict.DENY
    return Verdict.ACCEPT if valid else Verdict.REFUSE


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
        vlm_id = vlms.create_vlm(self.ctx, ADMIN, "base", [1, 2, 3, 4])  # sim on west stays free
        a = pools.create_pool(self.ctx, ADMIN, vlm_id, "a", MANAGER.username, {FEATURES[0]: 6})
        b = pools.create_pool(
            self.ctx, ADMIN, vlm_id, "b", OTHER_MANAGER.username, {FEATURES[0]: 3}
        )
        c = pools.create_pool(self.ctx, ADMIN, vlm_id, "c", MANAGER.username, {FEATURES[1]: 3})
        allocations.allocate(self.ctx, MANAGER, a, FEATURES[0], "ETHERNET", HOSTS[0], 2)
        allocations.allocate(self.ctx, OTHER_MANAGER, b, FEATURES[0], "ETHERNET", HOSTS[1], 1)
        allocations.allocate(self.ctx, MANAGER, c, FEATURES[1], "ETHERNET", HOSTS[2], 2)
        self.seeded = {a, b, c}
        # a pull found cad 2.0 on east down to 2 while 3 are pooled: over-committed (rule 5)
        self.ctx.db.write(
            lambda cur: cur.execute("UPDATE server_features SET total = 2 WHERE id = 2")
        )
        self.shrunk: set[int] = {2}
        self.pooled_at_shrink: dict[int, int] = {2: 3}

    def teardown(self) -> None:
        self.ctx.db.close()
        self.tmp.cleanup()

    def _snapshot(self) -> dict[str, list | None]:
        """Every row of the tables a rule call may write, by table."""
        return dict(zip(SNAPSHOT_TABLES, self.ctx.db.query(SNAPSHOT_SQL)[0], strict=True))

    def _pools(self) -> list[tuple[int, str]]:
        return self.ctx.db.query("SELECT id, manager FROM pools ORDER BY id")

    def _check(
        self,
        verdict: Verdict,
        call: Callable[[], object],
        accepted: Callable[[object], None] = lambda _: None,
        what: str = "",
    ) -> None:
        """Run a call and hold it to the model's verdict; accepted(result) checks its effect."""
        before = self._snapshot()
        try:
            result = call()
        except PermissionDenied as exc:
            assert verdict is Verdict.DENY, f"{what}: denied, the rules say {verdict.value}: {exc}"
            assert self._snapshot() == before, f"{what}: a denied call changed data"
            event(f"{what}: denied")
            return
        except VlmError as exc:
            assert verdict is Verdict.REFUSE, (
                f"{what}: refused, the rules say {verdict.value}: {exc}"
            )
            assert self._snapshot() == before, f"{what}: a refused call changed data"
            event(f"{what}: refused")
            return
        assert verdict is Verdict.ACCEPT, f"{what}: accepted, but the rules say {verdict.value}"
        accepted(result)
        after = self._snapshot()
        audit_before, audit_after = before.pop("audit_log") or [], after.pop("audit_log") or []
        if after != before:  # rule 7: every change writes an audit row
            assert len(audit_after) > len(audit_before), f"{what}: a change left no audit row"
        event(f"{what}: accepted")

    def _actor_for(self, data, pool_id: int) -> Actor:
        """Mostly the pool's own manager, sometimes anyone (to probe permissions)."""
        manager = dict(self._pools())[pool_id]
        own = next(a for a in ACTORS if a.username == manager)
        return data.draw(st.one_of(st.just(own), st.just(own), st.sampled_from(ACTORS)))

    def _pool_features(self, pool_id: int) -> dict[FeatureKey, int]:
        return dict(
            ((name, version), quantity)
            for name, version, quantity in self.ctx.db.query(
                "SELECT sf.feature_name, sf.feature_version, SUM(pp.quantity)::INTEGER "
                "FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id "
                "WHERE pp.pool_id = ? GROUP BY 1, 2",
                [pool_id],
            )
        )

    # admin rules

    @rule(data=st.data())
    def create_vlm(self, data) -> None:
        chosen = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=2, unique=True))
        name = f"vlm{data.draw(st.integers(0, 3))}"
        actor = data.draw(st.sampled_from(ADMIN_PROBES))
        estate = Estate(self.ctx)
        # rule 1: a server feature is exposed by one VLM at most
        taken = name in estate.vlm_names or any(sf in estate.exposed for sf in chosen)
        verdict = admin_verdict(actor, malformed=False, valid=not taken)

        def exposes(vlm_id) -> None:
            assert {sf for sf, v in Estate(self.ctx).exposed.items() if v == vlm_id} == set(chosen)

        self._check(
            verdict, lambda: vlms.create_vlm(self.ctx, actor, name, chosen), exposes, "create_vlm"
        )

    @rule(data=st.data())
    def create_pool(self, data) -> None:
        vlm_ids = [r[0] for r in self.ctx.db.query("SELECT id FROM vlms ORDER BY id")]
        vlm_id = data.draw(st.sampled_from(vlm_ids))
        estate = Estate(self.ctx)
        quantities = {
            f: data.draw(near(estate.healthy_poolable(vlm_id, f)))
            for f in data.draw(st.lists(st.sampled_from(FEATURES), min_size=1, unique=True))
        }
        manager = data.draw(st.sampled_from([MANAGER, OTHER_MANAGER])).username
        name = f"p{data.draw(st.integers(0, 5))}"
        actor = data.draw(st.sampled_from(ADMIN_PROBES))
        taken = any(v == vlm_id and n == name for v, n, _ in estate.pools.values())
        fits = all(
            estate.vlm_server_features(vlm_id, f) and q <= estate.healthy_poolable(vlm_id, f)
            for f, q in quantities.items()
        )
        some = any(q > 0 for q in quantities.values())
        malformed = any(q < 0 for q in quantities.values())
        verdict = admin_verdict(actor, malformed, valid=fits and some and not taken)

        def carved(pool_id) -> None:
            wanted = {f: q for f, q in quantities.items() if q > 0}
            assert self._pool_features(pool_id) == wanted
            assert dict(self._pools())[pool_id] == manager

        self._check(
            verdict,
            lambda: pools.create_pool(self.ctx, actor, vlm_id, name, manager, quantities),
            carved,
            "create_pool",
        )

    @rule(data=st.data())
    def resize_pool(self, data) -> None:
        pool_id = data.draw(st.sampled_from(self._pools()))[0]
        feature = data.draw(st.sampled_from(FEATURES))
        actor = self._actor_for(data, pool_id) if data.draw(st.booleans()) else ADMIN
        estate = Estate(self.ctx)
        vlm_id = estate.pools[pool_id][0]
        mine = estate.pool_portions(pool_id, feature)
        have = sum(p.quantity for p in mine)
        in_use = sum(p.allocated for p in mine)
        most = have + estate.healthy_poolable(vlm_id, feature)
        wanted = data.draw(near(in_use - 1, most))
        if not estate.vlm_server_features(vlm_id, feature):
            valid = False
        elif wanted > have:
            valid = wanted - have <= estate.healthy_poolable(vlm_id, feature)
        else:
            valid = wanted >= in_use
        # only an admin sizes pools, their own manager included
        verdict = admin_verdict(actor, malformed=wanted < 0, valid=valid)

        def resized(_) -> None:
            assert self._pool_features(pool_id).get(feature, 0) == wanted

        self._check(
            verdict,
            lambda: pools.update_pool(self.ctx, actor, pool_id, quantities={feature: wanted}),
            resized,
            "resize_pool",
        )

    @rule(data=st.data())
    def delete_pool(self, data) -> None:
        """Delete a pool made during the run (the two seeded pools stay, to keep allocations)."""
        made = [pool_id for pool_id, _ in self._pools() if pool_id not in self.seeded]
        if not made:
            return
        pool_id = data.draw(st.sampled_from(made))
        actor = self._actor_for(data, pool_id) if data.draw(st.booleans()) else ADMIN
        live = Estate(self.ctx).allocations
        confirmed = sum(1 for a in live.values() if a.pool_id == pool_id and a.live)
        verdict = admin_verdict(actor, malformed=False, valid=True)

        def gone(_) -> None:
            assert pool_id not in dict(self._pools())
            left = Estate(self.ctx).allocations.values()
            assert not any(a.live for a in left if a.pool_id == pool_id)

        self._check(
            verdict,
            lambda: pools.delete_pool(self.ctx, actor, pool_id, confirmed_allocations=confirmed),
            gone,
            "delete_pool",
        )

    # manager rules

    @rule(data=st.data())
    def allocate(self, data) -> None:
        pool_id = data.draw(st.sampled_from(self._pools()))[0]
        actor = self._actor_for(data, pool_id)
        feature = data.draw(st.one_of(st.just(FEATURES[0]), st.sampled_from(FEATURES)))
        host = data.draw(st.sampled_from(HOSTS))
        estate = Estate(self.ctx)
        mine = estate.pool_portions(pool_id, feature)
        count = data.draw(near(*(p.room for p in mine)))
        held = any(
            a.live
            and a.pool_id == pool_id
            and (a.feature_name, a.feature_version) == feature
            and a.host_id == host
            for a in estate.allocations.values()
        )
        target = placement(mine, count) if count >= 1 else None
        if not pool_writer(actor, estate.pools[pool_id][2]):
            verdict = Verdict.DENY
        elif held or target is None:
            verdict = Verdict.REFUSE
        else:
            verdict = Verdict.ACCEPT

        def placed(allocation_id) -> None:
            row = Estate(self.ctx).allocations[allocation_id]
            assert row == Row(pool_id, target.server_feature_id, *feature, host, count, "pending")

        self._check(
            verdict,
            lambda: allocations.allocate(
                self.ctx, actor, pool_id, feature, "ETHERNET", host, count
            ),
            placed,
            "allocate",
        )

    def _draw_live(self, data) -> tuple[int, int] | None:
        """A live allocation and its pool, or None when there is none."""
        rows = self.ctx.db.query(
            "SELECT id, pool_id FROM allocations WHERE state <> 'removing' ORDER BY id"
        )
        return data.draw(st.sampled_from(rows)) if rows else None

    @rule(data=st.data())
    def change_allocation(self, data) -> None:
        """One live allocation: a count edit (most often), a removal, a retry, or the server's
        answer as the reconciler records it (one rule, so that swarm testing rarely leaves
        edits out of an example)."""
        drawn = self._draw_live(data)
        if drawn is None:
            return
        allocation_id, pool_id = drawn
        actor = self._actor_for(data, pool_id)
        change = data.draw(
            st.sampled_from(
                [self._edit_count] * 3 + [self._remove, self._retry, self._server_answers]
            )
        )
        change(data, actor, pool_id, allocation_id)

    def _edit_count(self, data, actor: Actor, pool_id: int, allocation_id: int) -> None:
        estate = Estate(self.ctx)
        row = estate.live_allocation(allocation_id)
        sf, current, state = row.server_feature_id, row.count, row.state
        portion = next(
            (
                p
                for p in estate.pool_portions(pool_id, (row.feature_name, row.feature_version))
                if p.server_feature_id == sf
            ),
            None,
        )
        room_edge = [] if portion is None else [current + portion.room]
        count = data.draw(near(current - 1, current, *room_edge))
        growth = count - current
        if portion is not None and portion.over_committed:
            event("edit_count: on an over-committed portion")
        if not pool_writer(actor, estate.pools[pool_id][2]):
            verdict = Verdict.DENY
        elif count < 1:
            verdict = Verdict.REFUSE
        elif growth == 0:
            verdict = Verdict.ACCEPT
        elif portion is None or (growth > 0 and portion.over_committed) or growth > portion.room:
            verdict = Verdict.REFUSE
        else:
            verdict = Verdict.ACCEPT  # a shrink, or growth within its own portion's room

        def edited(_) -> None:
            after = Estate(self.ctx).allocations[allocation_id]
            assert (after.count, after.state) == (count, "pending" if growth else state)
            assert (
                self.ctx.db.scalar(
                    "SELECT description FROM allocations WHERE id = ?", [allocation_id]
                )
                == "edited"
            )

        self._check(
            verdict,
            lambda: allocations.update_allocation(
                self.ctx, actor, pool_id, allocation_id, count=count, description="edited"
            ),
            edited,
            "edit_count",
        )

    def _remove(self, data, actor: Actor, pool_id: int, allocation_id: int) -> None:
        estate = Estate(self.ctx)
        state = estate.live_allocation(allocation_id).state
        writer = pool_writer(actor, estate.pools[pool_id][2])
        verdict = Verdict.ACCEPT if writer else Verdict.DENY

        def removed(_) -> None:
            row = Estate(self.ctx).allocations.get(allocation_id)
            if state == "failed":
                assert row is None, "a failed allocation is deleted outright"
            else:
                assert row is not None and row.state == "removing"

        self._check(
            verdict,
            lambda: allocations.remove_allocation(self.ctx, actor, pool_id, allocation_id),
            removed,
            "remove",
        )

    def _retry(self, data, actor: Actor, pool_id: int, allocation_id: int) -> None:
        estate = Estate(self.ctx)
        state = estate.live_allocation(allocation_id).state
        if not pool_writer(actor, estate.pools[pool_id][2]):
            verdict = Verdict.DENY
        else:
            verdict = Verdict.ACCEPT if state == "failed" else Verdict.REFUSE

        def pending(_) -> None:
            assert Estate(self.ctx).allocations[allocation_id].state == "pending"

        self._check(
            verdict,
            lambda: allocations.retry_allocation(self.ctx, actor, pool_id, allocation_id),
            pending,
            "retry",
        )

    @rule(data=st.data())
    def read_pool(self, data) -> None:
        pool_id = data.draw(st.sampled_from(self._pools()))[0]
        actor = self._actor_for(data, pool_id)
        manager = dict(self._pools())[pool_id]
        seen = actor.role is not Role.MANAGER or actor.username == manager
        rows = Estate(self.ctx).allocations.values()
        live = sum(1 for a in rows if a.pool_id == pool_id and a.live)
        try:
            frame = allocations.list_allocations(self.ctx, actor, pool_id)
        except NotFound:  # a manager does not learn that someone else's pool exists
            assert not seen, f"{actor} could not read pool {pool_id}"
            return
        assert seen, f"{actor} read pool {pool_id} of {manager}"
        assert len(frame) == live

    # what the license servers and the reconciler do

    @rule(data=st.data())
    def inventory_pull(self, data) -> None:
        """A pull finds a new total: just what is pooled, 1-2 below it (rule 5), or 2 more."""
        estate = Estate(self.ctx)
        pooled = [sf for sf in sorted(estate.server_features) if estate.pooled(sf)]
        sf = data.draw(st.sampled_from(pooled or sorted(estate.server_features)))
        _, _, total, others = estate.server_features[sf]
        shortfall = data.draw(st.sampled_from([None, 0, 1, 2]))  # None: the server gained 2
        if shortfall is None:
            new_total = total + 2
        else:
            new_total = max(min(total, estate.pooled(sf) + others - shortfall), 0)
            self.shrunk.add(sf)
            self.pooled_at_shrink[sf] = estate.pooled(sf)
        self.ctx.db.write(
            lambda cur: cur.execute(
                "UPDATE server_features SET total = ? WHERE id = ?", [new_total, sf]
            )
        )

    def _server_answers(self, data, _actor: Actor, _pool_id: int, allocation_id: int) -> None:
        """The reconciler records the server's answer: applied, or failed with its message."""
        state = data.draw(st.sampled_from(["applied", "failed"]))
        self.ctx.db.write(
            lambda cur: cur.execute(
                "UPDATE allocations SET state = ? WHERE id = ?", [state, allocation_id]
            )
        )

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

    @invariant()
    def pools_only_on_their_vlms_features(self) -> None:
        strays = self.ctx.db.query(
            "SELECT pp.pool_id, pp.server_feature_id FROM pool_portions pp "
            "JOIN pools p ON p.id = pp.pool_id LEFT JOIN vlm_features vf "
            "ON vf.server_feature_id = pp.server_feature_id AND vf.vlm_id = p.vlm_id "
            "WHERE vf.vlm_id IS NULL"
        )
        assert strays == []


AccountingMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # explain is minutes
    suppress_health_check=[HealthCheck.too_slow],
)
TestAccountingRules = AccountingMachine.TestCase
