"""Secrets never travel in server URLs, error texts or reprs (issue #7, item 9, URL part).

A base URL with `user:password@` is refused on the URL field; credentials already stored in a
URL or an error text (from before this check, or written by a sync) are shown as `***@`.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import (  # noqa: F401 - fixtures (caches released after each test)
    app,
    demo_db,
    demo_emulators,
    demo_template,
    fresh_streamlit_caches,
    open_page,
    open_section,
    service_context,
)
from tests.conftest import ADMIN, ANALYST
from tests.unit.services.estate import add_people
from tests.unit.services.test_bad_input import database_dump
from vlm.domain import SYSTEM_ACTOR, ValidationError
from vlm.services import servers

PASSWORD = "hunter2-s3cret"


@pytest.fixture
def ctx(ctx):
    """The service context with the test users (writes re-check the acting user)."""
    add_people(ctx)
    return ctx


CREDENTIAL_URLS = [
    f"http://admin:{PASSWORD}@lls.example:7070",
    f"https://admin:{PASSWORD}@lls.example",
    f"http://{PASSWORD}@lls.example:7070",
    f"http://admin:{PASSWORD}@@lls.example:7070",
]


@pytest.mark.parametrize("url", CREDENTIAL_URLS)
def test_credentials_in_the_base_url_are_refused_on_the_url_field(ctx, url):
    """Before: the URL was accepted and its password later showed in last_error to analysts."""
    server_id = servers.add_server(ctx, ADMIN, servers.ServerInput("lls", "http://lls:7070"))
    before = database_dump(ctx)
    data = servers.ServerInput("other", url)
    for call in (
        lambda: servers.add_server(ctx, ADMIN, data),
        lambda: servers.edit_server(ctx, ADMIN, server_id, data, keep_password=True),
        lambda: servers.check_connection(ctx, ADMIN, data),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.field == "base_url"
        assert "user:password@" in info.value.message and PASSWORD not in info.value.message
    assert database_dump(ctx) == before


def test_server_input_repr_hides_the_password():
    data = servers.ServerInput("lls", "http://lls:7070", username="admin", password=PASSWORD)
    assert PASSWORD not in repr(data) and PASSWORD not in str(data)
    assert "username='admin'" in repr(data)


def _store_legacy_credentials(ctx) -> int:
    """A server row as an older VLM or a sync left it: credentials in its URL and last error."""
    server_id = servers.add_server(ctx, ADMIN, servers.ServerInput("lls", "http://lls:7070"))

    def write(cur):
        cur.execute(
            "UPDATE license_servers SET base_url = ?, last_error = ? WHERE id = ?",
            [
                f"http://admin:{PASSWORD}@lls:7070",
                f"ConnectError: http://admin:{PASSWORD}@lls:7070/api/1.0/health failed",
                server_id,
            ],
        )

    ctx.db.write(write)
    return server_id


def test_server_list_and_details_redact_userinfo_for_every_reader(ctx):
    server_id = _store_legacy_credentials(ctx)
    for actor in (ADMIN, ANALYST):
        row = servers.list_servers(ctx, actor).set_index("id").loc[server_id]
        assert row["base_url"] == "http://***@lls:7070"
        assert row["last_error"] == "ConnectError: http://***@lls:7070/api/1.0/health failed"
    detail = servers.get_server(ctx, ADMIN, server_id)
    assert PASSWORD not in repr(detail) and detail["base_url"] == "http://***@lls:7070"


def test_a_stored_url_with_credentials_must_be_fixed_before_it_is_used_or_saved(ctx):
    server_id = _store_legacy_credentials(ctx)
    with pytest.raises(ValidationError, match="user:password@") as info:
        servers.check_saved_server(ctx, ADMIN, server_id)
    assert PASSWORD not in info.value.message
    shown = servers.get_server(ctx, ADMIN, server_id)
    resaved = servers.ServerInput(shown["name"], shown["base_url"])
    with pytest.raises(ValidationError, match="user:password@"):
        servers.edit_server(ctx, ADMIN, server_id, resaved, keep_password=True)


def test_audit_rows_of_a_server_edit_carry_no_credentials(ctx):
    server_id = _store_legacy_credentials(ctx)
    fixed = servers.ServerInput("lls", "http://lls:7070", username="admin", password=PASSWORD)
    servers.edit_server(ctx, ADMIN, server_id, fixed, keep_password=False)
    audit_text = " ".join(str(r) for r in ctx.db.query("SELECT before, after FROM audit_log"))
    assert PASSWORD not in audit_text
    assert "http://***@lls:7070" in audit_text


def test_servers_page_refuses_a_url_with_credentials(app):  # noqa: F811 - the fixture
    at: AppTest = open_section(open_page(app("admin"), "servers"), "add_server_section")
    before = len(servers.list_servers(service_context(), SYSTEM_ACTOR))
    name, url = [t for t in at.text_input if t.label in ("Name", "Base URL")][:2]
    name.input("leaky")
    url.input(f"http://admin:{PASSWORD}@lls.example:7070")
    next(b for b in at.button if b.label == "Add server").click()
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("user:password@" in e for e in errors), errors
    assert all(PASSWORD not in e for e in errors)
    assert len(servers.list_servers(service_context(), SYSTEM_ACTOR)) == before
