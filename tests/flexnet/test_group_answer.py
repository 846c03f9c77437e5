"""The typed decode of GET /reservationgroups gives exactly the generic path's mirror rows, and
hands every answer it cannot take exactly to the generic path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vlm.flexnet.group_answer import GroupsAnswer, decode_inline_groups
from vlm.sync.mirror import answer_mirror_rows, doc_mirror_rows, raw_mirror_rows

PREFIX = "vlm-"


def _entry(eid: Any, name: str = "cad", count: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "featureName": name, "featureVersion": "1.0", "featureCount": count, **extra}


def _group(gid: Any, name: str, *reservations: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": gid,
        "name": name,
        "creationDate": "2026-12-01T10:00:00Z",
        "ipAddress": "10.0.0.1",
        "reservations": list(reservations),
    }


def _reservation(
    rid: Any, host: dict[str, Any] | None, *entries: dict[str, Any], key: str = "hostId"
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": rid, "reservationEntries": list(entries)}
    if host is not None:
        body[key] = host
    return body


ETHERNET = {"type": "ETHERNET", "value": "0050569A0001"}
TAKEN = [
    pytest.param([], id="no groups"),
    pytest.param(
        [
            _group(
                1, "vlm-ETHERNET-0050569A0001", _reservation(7, ETHERNET, _entry(3, state="ACTIVE"))
            )
        ],
        id="one owned group",
    ),
    pytest.param(
        [_group("12", "ops", _reservation("8", ETHERNET, _entry("4", count="2", state=None)))],
        id="ids and counts as digit strings",
    ),
    pytest.param(
        [
            _group(
                2,
                "ops",
                _reservation(
                    9, {"hostidType": "USER", "hostidValue": "jo"}, _entry(5), key="hostid"
                ),
            )
        ],
        id="client-record host id shape",
    ),
    pytest.param(
        [
            _group(
                3,
                "ops",
                {**_reservation(10, {}, _entry(6)), "hostid": {"type": "USER", "value": "ann"}},
            )
        ],
        id="empty hostId falls back to hostid",
    ),
    pytest.param(
        [_group(4, "vlm-x", _reservation(11, None))], id="reservation without host or entries"
    ),
    pytest.param(
        [_group(5, "vlm-y", _reservation(12, ETHERNET, _entry(7, count=None, state="DISABLED")))],
        id="null count, disabled entry",
    ),
]
GENERIC_ONLY = [
    pytest.param([_group(1, "ops")], id="group without reservations"),
    pytest.param([{"id": 1, "name": "ops"}], id="reservations not listed"),
    pytest.param([_group(1, "ops", {"id": 2, "hostId": ETHERNET})], id="entries not listed"),
    pytest.param(
        [_group(1, "ops", _reservation(2, ETHERNET, _entry(3, count="n/a")))],
        id="count that is no number",
    ),
    pytest.param([_group(1, None, _reservation(2, ETHERNET, _entry(3)))], id="null name"),
    pytest.param(
        [_group(1, "ops", _reservation(2, ETHERNET, _entry(3, count=1.5)))], id="fractional count"
    ),
    pytest.param(
        [_group(1, "ops", _reservation(2, {"type": 5, "value": "x"}, _entry(3)))],
        id="host type that is no string",
    ),
    pytest.param(["not a group"], id="an item that is no object"),
    pytest.param({"groups": []}, id="no array"),
]


@pytest.mark.parametrize("answer", TAKEN)
def test_the_typed_decode_gives_the_generic_paths_rows(answer: list[dict[str, Any]]) -> None:
    body = json.dumps(answer).encode()
    docs = decode_inline_groups(body)
    assert docs is not None
    assert doc_mirror_rows(3, docs, PREFIX) == raw_mirror_rows(3, json.loads(body), PREFIX)
    assert GroupsAnswer(docs=docs).names() == GroupsAnswer(raw=json.loads(body)).names()


@pytest.mark.parametrize("answer", GENERIC_ONLY)
def test_answers_the_typed_decode_cannot_take_exactly_go_to_the_generic_path(answer: Any) -> None:
    assert decode_inline_groups(json.dumps(answer).encode()) is None


def test_answer_rows_follow_whichever_path_read_the_answer() -> None:
    raw = [_group(1, "vlm-a", _reservation(2, ETHERNET, _entry(3, count=4)))]
    docs = decode_inline_groups(json.dumps(raw).encode())
    typed = answer_mirror_rows(1, GroupsAnswer(docs=docs), PREFIX)
    generic = answer_mirror_rows(1, GroupsAnswer(raw=raw), PREFIX)
    assert (
        typed
        == generic
        == [(1, 1, "vlm-a", True, 2, "ETHERNET", "0050569A0001", 3, "cad", "1.0", 4, None)]
    )
