import pytest

from vlm.domain import (
    HostType,
    PortionRoom,
    ValidationError,
    normalize_host_id,
    parse_host_type,
    reduce_portions,
    reservation_group_name,
    split_into_portions,
    validate_count,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00:50:56:9a:1b:2c", "0050569A1B2C"),
        ("0050569a1b2c", "0050569A1B2C"),
        ("00-50-56-9A-1B-2C", "0050569A1B2C"),
    ],
)
def test_ethernet_ids_are_normalised(raw, expected):
    assert normalize_host_id(HostType.ETHERNET, raw) == expected


@pytest.mark.parametrize("raw", ["", "0050569A1B2", "0050569A1B2CZ", "GG50569A1B2C", None])
def test_malformed_ethernet_ids_are_refused(raw):
    with pytest.raises(ValidationError) as info:
        normalize_host_id(HostType.ETHERNET, raw)
    assert info.value.field == "host_id"


def test_user_ids_need_printable_text_within_limit():
    assert normalize_host_id(HostType.USER, "  jsmith ") == "jsmith"
    with pytest.raises(ValidationError, match="longer than"):
        normalize_host_id(HostType.USER, "x" * 200)
    with pytest.raises(ValidationError, match="control characters"):
        normalize_host_id(HostType.STRING, "bad\x07id")


def test_host_type_and_count_parsing():
    assert parse_host_type("ethernet") is HostType.ETHERNET
    with pytest.raises(ValidationError, match="ETHERNET, USER, STRING"):
        parse_host_type("MAC")
    assert validate_count("3") == 3
    for bad in (0, -1, 1.5, "x", None):
        with pytest.raises(ValidationError):
            validate_count(bad)


def test_group_names_are_deterministic_readable_and_bounded():
    assert reservation_group_name("vlm-", "ETHERNET", "0050569A1B2C") == "vlm-ETHERNET-0050569A1B2C"
    odd = reservation_group_name("vlm-", "USER", "john smith/ops")
    assert odd.startswith("vlm-USER-john_smith_ops~") and odd == reservation_group_name(
        "vlm-", "USER", "john smith/ops"
    )
    assert odd != reservation_group_name("vlm-", "USER", "john_smith_ops")
    long = reservation_group_name("vlm-", "STRING", "a" * 128)
    assert len(long) <= 64 and long != reservation_group_name("vlm-", "STRING", "a" * 127)


def test_split_is_greedy_most_room_first_ties_by_name():
    rooms = [PortionRoom(1, "west", 4), PortionRoom(2, "east", 4), PortionRoom(3, "north", 9)]
    assert split_into_portions(12, rooms) == {3: 9, 2: 3}
    with pytest.raises(ValidationError, match="only 17 available"):
        split_into_portions(18, rooms)


def test_reduce_never_goes_below_allocated():
    assert reduce_portions({1: 5, 2: 5}, {1: 4, 2: 1}, 6) == {1: 5, 2: 1}
    with pytest.raises(ValidationError, match="below the 5 already allocated"):
        reduce_portions({1: 5, 2: 5}, {1: 4, 2: 1}, 4)
