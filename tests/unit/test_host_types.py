"""Host id types (issue #8 item 7): every type FNE accepts in a reservation, each with its
format checked and a message that shows an example; the emulator takes all of them."""

from __future__ import annotations

import pytest

from tests.sync.conftest import (  # noqa: F401 - fixtures
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    allocation,
    ctx,
    emulator,
    feature_id,
    server_state,
)
from vlm.domain import (
    HOST_ID_FORMATS,
    HOST_ID_MAX_LENGTH,
    HostType,
    ValidationError,
    host_id_help,
    normalize_host_id,
    parse_host_type,
    reservation_group_name,
)
from vlm.sync import reconcile_server

# docs/architecture.md §9: the host id types FNE names are ETHERNET, USER and STRING
FNE_RESERVATION_TYPES = {"ETHERNET", "USER", "STRING"}


def test_the_types_are_the_ones_fne_reserves_for_and_each_has_a_format():
    assert {t.value for t in HostType} == FNE_RESERVATION_TYPES
    assert set(HOST_ID_FORMATS) == set(HostType)
    for host_type in HostType:
        assert parse_host_type(host_type.value.lower()) is host_type
        assert host_type.value in host_id_help()
        assert HOST_ID_FORMATS[host_type].example in host_id_help()


@pytest.mark.parametrize("host_type", list(HostType))
def test_each_types_example_is_a_valid_host_id_of_that_type(host_type):
    example = HOST_ID_FORMATS[host_type].example
    assert normalize_host_id(host_type, example) == example


@pytest.mark.parametrize(
    ("host_type", "typed", "expected"),
    [
        (HostType.ETHERNET, "0050569A1B2", "ETHERNET host id '0050569A1B2' must be 12 hex digits"),
        (HostType.ETHERNET, "0050569A1B2C3", "must be 12 hex digits (e.g. 0050569A1B2C)"),
        (HostType.ETHERNET, "GG50569A1B2C", "must be 12 hex digits (e.g. 0050569A1B2C)"),
        (HostType.USER, "", "host id is empty (USER: a user name of up to 128 characters"),
        (HostType.USER, "jdoe\x1b", "control or invalid character (U+001B) (USER:"),
        (HostType.STRING, "   ", "host id is empty (STRING: printable text of up to 128"),
        (HostType.STRING, "rig\x07", "control or invalid character (U+0007) (STRING:"),
        (HostType.STRING, "r" * (HOST_ID_MAX_LENGTH + 1), "like LAB-RIG-07)"),
    ],
)
def test_a_malformed_host_id_is_refused_with_its_types_example(host_type, typed, expected):
    with pytest.raises(ValidationError) as refused:
        normalize_host_id(host_type, typed)
    assert expected in refused.value.message
    assert HOST_ID_FORMATS[host_type].example in refused.value.message
    assert refused.value.field == "host_id"


@pytest.mark.parametrize(
    ("host_type", "typed", "canonical"),
    [
        (HostType.ETHERNET, " 00:50:56:9a:1b:2c ", "0050569A1B2C"),
        (HostType.ETHERNET, "00-50-56-9A-1B-2C", "0050569A1B2C"),
        (HostType.ETHERNET, "0050.569a.1b2c", "0050569A1B2C"),
        (HostType.USER, "  DOMAIN\\jdoe ", "DOMAIN\\jdoe"),
        (HostType.USER, "John Smith", "John Smith"),  # a Windows account name may hold spaces
        (HostType.STRING, " rig 7 of lab B ", "rig 7 of lab B"),
        (HostType.STRING, "s" * HOST_ID_MAX_LENGTH, "s" * HOST_ID_MAX_LENGTH),
    ],
)
def test_well_formed_host_ids_keep_their_canonical_form(host_type, typed, canonical):
    assert normalize_host_id(host_type, typed) == canonical


def test_the_emulator_reserves_for_every_host_type(ctx, emulator):  # noqa: F811 - fixtures
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 10})
    hosts = {t: HOST_ID_FORMATS[t].example for t in HostType}
    ids = {t: allocate(ctx, pool, cad, host, 1, t.value) for t, host in hosts.items()}

    report = reconcile_server(ctx, server)

    assert report.error is None
    assert {t: allocation(ctx, i)["state"] for t, i in ids.items()} == dict.fromkeys(
        HostType, "applied"
    )
    assert server_state(emulator) == {
        reservation_group_name(PREFIX, t.value, host): {(t.value, host): {("cad", "1.0"): 1}}
        for t, host in hosts.items()
    }
