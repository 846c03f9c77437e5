"""A user's own notification destinations: parsed like alert-rule destinations, stored
encrypted, shown masked, replaced or cleared by their owner only, audited."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, every_row
from tests.unit.services.estate import add_people
from vlm.context import ServiceContext
from vlm.domain import Actor, PermissionDenied, Role, ValidationError
from vlm.services import audit, notifications, users

SECRET = "s3cret-hook-token"


@pytest.fixture
def people(ctx: ServiceContext) -> None:
    add_people(ctx)


def stored(ctx: ServiceContext, username: str) -> tuple:
    return ctx.db.query(
        "SELECT notify_destinations_encrypted, notify_destination_labels FROM users "
        "WHERE username = ?",
        [username],
    )[0]


def test_destinations_are_stored_encrypted_and_shown_masked(ctx, people) -> None:
    labels = notifications.set_own_destinations(
        ctx,
        ANALYST,
        f"json://vlm:{SECRET}@127.0.0.1:9/hook\n\nmailto://127.0.0.1:25?from=vlm@x.org&to=d@x.org",
    )

    assert len(labels) == 2
    assert notifications.own_destinations(ctx, ANALYST) == labels
    sealed, shown = stored(ctx, ANALYST.username)
    assert SECRET not in sealed and SECRET not in shown and SECRET not in "".join(labels)
    assert notifications.own_destinations(ctx, MANAGER) == []
    logged = audit.audit_log(ctx, ADMIN, action="user.notifications")
    assert logged["actor"].tolist() == ["dave"] and SECRET not in logged["after"].iloc[0]


def test_an_empty_text_clears_them(ctx, people) -> None:
    notifications.set_own_destinations(ctx, MANAGER, "json://127.0.0.1:9/hook")
    assert notifications.set_own_destinations(ctx, MANAGER, "  ") == []
    assert stored(ctx, MANAGER.username) == (None, "")


def test_a_line_apprise_cannot_use_is_refused_and_nothing_changes(ctx, people) -> None:
    notifications.set_own_destinations(ctx, MANAGER, "json://127.0.0.1:9/hook")
    before = every_row(ctx.db, "users")
    with pytest.raises(ValidationError) as refused:
        notifications.set_own_destinations(ctx, MANAGER, "json://127.0.0.1:9/ok\nnot a url")
    assert refused.value.field == "destinations" and "destination 2" in refused.value.message
    assert every_row(ctx.db, "users") == before


def test_a_disabled_or_unknown_user_sets_nothing(ctx, people) -> None:
    users.set_disabled(ctx, ADMIN, MANAGER.username, True)
    for actor in (MANAGER, Actor("ghost", Role.MANAGER)):
        with pytest.raises(PermissionDenied):
            notifications.set_own_destinations(ctx, actor, "json://127.0.0.1:9/hook")
    assert stored(ctx, MANAGER.username) == (None, "")
