"""The drift history service: newest first, per server, admins only, bounded."""

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER
from tests.unit.services.estate import add_people, add_server
from vlm.domain import PermissionDenied, ValidationError
from vlm.services.drift_history import drift_history
from vlm.store import drift as q


@pytest.fixture
def servers(ctx):
    add_people(ctx)
    east = add_server(ctx, "east", {("cad", "1.0"): 10})
    west = add_server(ctx, "west", {("cad", "1.0"): 6})
    events = [
        (east, "missing", "vlm-USER-a", "USER", "a", "cad", "1.0", 2, "gone"),
        (west, "server restarted", None, None, None, None, None, None, "new instance"),
        (east, "repaired", None, "USER", "a", "cad", "1.0", 2, "re-created"),
    ]
    ctx.db.write(lambda cur: q.insert_drift_events(cur, events))
    return ctx, east, west


def test_history_lists_one_servers_events_newest_first(servers):
    ctx, east, _ = servers
    history = drift_history(ctx, ADMIN, east)
    assert list(history["kind"]) == ["repaired", "missing"]
    assert list(history["server"]) == ["east", "east"]
    assert history.iloc[1]["count"] == 2


def test_history_of_every_server_is_bounded_by_limit(servers):
    ctx, _, _ = servers
    assert list(drift_history(ctx, ADMIN)["kind"]) == ["repaired", "server restarted", "missing"]
    assert len(drift_history(ctx, ADMIN, limit=1)) == 1


@pytest.mark.parametrize("actor", [MANAGER, ANALYST])
def test_only_admins_read_the_history(servers, actor):
    ctx, east, _ = servers
    with pytest.raises(PermissionDenied):
        drift_history(ctx, actor, east)


@pytest.mark.parametrize("limit", [0, -1, 10_001, 2.5, True, "10"])
def test_a_bad_limit_is_refused(servers, limit):
    ctx, _, _ = servers
    with pytest.raises(ValidationError, match="limit"):
        drift_history(ctx, ADMIN, limit=limit)
