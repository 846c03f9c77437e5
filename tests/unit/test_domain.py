import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlm.domain import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    HostType,
    PortionRoom,
    ValidationError,
    _allowed_char,
    _first_refused,
    _plain_ascii,
    bounded_float,
    bounded_int,
    clean_text,
    normalize_host_id,
    parse_host_type,
    redact_userinfo,
    reduce_portions,
    reservation_group_name,
    shown,
    split_into_portions,
    validate_base_url,
    validate_count,
    validate_description,
    validate_name,
    validate_quantities,
    validate_quantity,
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
    with pytest.raises(ValidationError, match="control or invalid character"):
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


@pytest.mark.parametrize(
    "hostile",
    [
        "\ud800",
        "a\ud800b",
        "nul\x00here",
        "bell\x07",
        "c1\x85x\x9b",
        "line\u2028sep",
        "para\u2029sep",
        "bidi\u202eevil",
        "isolate\u2066x",
        "esc\x1b[31m",
    ],
)
def test_clean_text_refuses_surrogates_controls_and_separators(hostile):
    with pytest.raises(ValidationError) as info:
        clean_text(hostile, "name", max_len=NAME_MAX_LENGTH)
    assert info.value.field == "name" and "name" in info.value.message
    info.value.message.encode("utf-8")  # the message itself is safe to show


def test_clean_text_strips_keeps_unicode_and_multiline_only_where_asked():
    assert clean_text("  Ünïcode 名前 🚀 \u200f ", "name", max_len=20) == "Ünïcode 名前 🚀 \u200f"
    assert clean_text("one\r\ntwo\tthree", "d", max_len=50, multiline=True) == "one\ntwo\tthree"
    with pytest.raises(ValidationError, match="control or invalid character"):
        clean_text("one\ntwo", "name", max_len=50)
    with pytest.raises(ValidationError, match="name is empty"):
        clean_text("   ", "name", max_len=50)
    assert clean_text("   ", "description", max_len=50, required=False) == ""


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30), st.booleans())
def test_the_quick_ascii_check_refuses_what_the_per_character_one_refuses(text, multiline):
    quick = None if _plain_ascii(text) else _first_refused(text, multiline=multiline)
    thorough = next((c for c in text if not _allowed_char(c, multiline=multiline)), None)
    assert quick == thorough


@pytest.mark.parametrize("wrong", [5, 2.5, None, b"bytes", ["x"], True])
def test_clean_text_takes_only_str(wrong):
    with pytest.raises(ValidationError, match="server name must be text") as info:
        clean_text(wrong, "name", max_len=10, label="server name")
    assert info.value.field == "name"


def test_documented_length_limits():
    assert validate_name("x" * NAME_MAX_LENGTH, "pool name") == "x" * NAME_MAX_LENGTH
    with pytest.raises(ValidationError, match="pool name is longer than 100 characters"):
        validate_name("x" * (NAME_MAX_LENGTH + 1), "pool name")
    assert len(validate_description("d" * DESCRIPTION_MAX_LENGTH)) == DESCRIPTION_MAX_LENGTH
    with pytest.raises(ValidationError, match="description is longer than 2,000 characters"):
        validate_description("d" * 20_000)
    with pytest.raises(ValidationError, match="host id is longer than 128"):
        normalize_host_id(HostType.STRING, "h" * 129)
    assert validate_description(None) == validate_description(math.nan) == ""


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        1e400,
        "1e400",
        "NaN",
        "inf",
        "abc",
        "2.5",
        2.5,
        True,
        False,
        None,
        "",
        [1],
        10**400,
        "9" * 5000,
    ],
)
def test_bounded_int_refuses_what_is_not_a_whole_number(bad):
    with pytest.raises(ValidationError) as info:
        bounded_int(bad, "count", minimum=1, maximum=1_000_000)
    assert info.value.field == "count" and info.value.message.startswith("count ")


def test_bounded_int_accepts_whole_numbers_in_range_only():
    assert [bounded_int(v, "n", minimum=0, maximum=9) for v in (3, "4", " 5 ", 6.0, "7.0")] == [
        3,
        4,
        5,
        6,
        7,
    ]
    with pytest.raises(ValidationError, match="at most 1,000,000"):
        validate_count(1_000_001)
    with pytest.raises(ValidationError, match="at most 1,000,000"):
        validate_quantity(2**63)
    with pytest.raises(ValidationError, match="≥ 0"):
        validate_quantity(-1)
    assert validate_quantity(0) == 0


@pytest.mark.parametrize("bad", ["abc", math.nan, math.inf, 1e400, True, None, 0.05, 301, "1e400"])
def test_bounded_float_refuses_non_finite_text_and_out_of_range(bad):
    with pytest.raises(ValidationError) as info:
        bounded_float(bad, "timeout", minimum=0.1, maximum=300)
    assert info.value.field == "timeout"


def test_bounded_float_accepts_numbers_and_numeric_text():
    assert bounded_float("2.5", "timeout", minimum=0.1, maximum=300) == 2.5
    assert bounded_float(300, "timeout", minimum=0.1, maximum=300) == 300.0


def test_quantities_are_checked_per_feature():
    assert validate_quantities({("cad", "1.0"): "3"}) == {("cad", "1.0"): 3}
    with pytest.raises(ValidationError, match="cad 1.0: quantity must be a whole number"):
        validate_quantities({("cad", "1.0"): math.nan})
    with pytest.raises(ValidationError, match="feature must be a"):
        validate_quantities({"cad": 1})
    with pytest.raises(ValidationError, match="quantities must map"):
        validate_quantities([("cad", "1.0")])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://u:p@h:1/x failed", "http://***@h:1/x failed"),
        (
            "GET https://admin:s3cret@lls.example:7070/api: 401",
            "GET https://***@lls.example:7070/api: 401",
        ),
        ("two http://a:b@one/ and HTTPS://c@two:8", "two http://***@one/ and HTTPS://***@two:8"),
        ("at sign in password http://u:p@ss@h/x", "at sign in password http://***@h/x"),
        ("'http://u:p@h' quoted", "'http://***@h' quoted"),
        ("no credentials http://h:1/x?mail=a@b.c", "no credentials http://h:1/x?mail=a@b.c"),
        ("plain text with a@b.c", "plain text with a@b.c"),
    ],
)
def test_redact_userinfo_hides_credentials_in_every_url(text, expected):
    assert redact_userinfo(text) == expected


def test_base_url_refuses_credentials_without_echoing_them():
    with pytest.raises(ValidationError) as info:
        validate_base_url("http://admin:hunter2@lls:7070")
    assert info.value.field == "base_url"
    assert "user:password@" in info.value.message and "hunter2" not in info.value.message
    for bad in ("lls:7070", "ftp://lls", "http://", "http://[::1", "http://h:99999", "http://a b"):
        with pytest.raises(ValidationError, match="base URL"):
            validate_base_url(bad)
    assert validate_base_url(" https://lls.example:7070/ ") == "https://lls.example:7070"


def test_shown_values_are_printable_and_short():
    assert shown("\ud800\x00") == "\\ud800\\x00"
    assert shown("x" * 100) == "x" * 40 + "…"
    assert shown(math.nan) == "nan"
