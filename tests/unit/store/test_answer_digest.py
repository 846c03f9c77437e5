"""The mirror digest DuckDB reads from a groups answer's bytes equals the digest of the rows the
Python paths make of the same answer, for every shape the typed decode takes; other shapes
have none."""

from __future__ import annotations

import json
import tempfile

import pytest

from vlm.flexnet.group_answer import decode_inline_groups
from vlm.store.answer_digest import answer_mirror_digest, stored_mirror_digest
from vlm.store.database import Database
from vlm.store.reservations import replace_mirror
from vlm.sync.mirror import doc_mirror_rows, mirror_table

SERVER = 7
PREFIX = "vlm-"


def _group(gid, name, *reservations) -> dict:
    return {"id": gid, "name": name, "reservations": list(reservations)}


def _reservation(rid, host: dict | None, *entries, key: str = "hostId") -> dict:
    body: dict = {"id": rid, "reservationEntries": list(entries)}
    if host is not None:
        body[key] = host
    return body


def _entry(eid, name, version, count, state="ACTIVE") -> dict:
    return {
        "id": eid,
        "featureName": name,
        "featureVersion": version,
        "featureCount": count,
        "state": state,
    }


ETHERNET = {"type": "ETHERNET", "value": "AABBCCDDEEFF"}
TYPED_SHAPES = {
    "owned and foreign groups": [
        _group(
            1, "vlm-ETHERNET-AABBCCDDEEFF", _reservation(1, ETHERNET, _entry(1, "cad", "1.0", 2))
        ),
        _group(
            2,
            "ops-team",
            _reservation(2, {"type": "USER", "value": "alice"}, _entry(2, "cad", "1.0", 3)),
            _reservation(3, {"type": "USER", "value": "bob"}, _entry(3, "viz", "2.0", 1)),
        ),
    ],
    "a batch group of several hosts and entries": [
        _group(
            9,
            "vlm-~batch-0123456789abcdef0123",
            _reservation(4, ETHERNET, _entry(4, "cad", "1.0", 1), _entry(5, "viz", "2.0", 4)),
            _reservation(
                5, {"type": "ETHERNET", "value": "000000000001"}, _entry(6, "cad", "1.0", 1)
            ),
        )
    ],
    "a reservation without entries": [_group(3, "vlm-x", _reservation(6, ETHERNET))],
    "an empty host id": [_group(5, "g", _reservation(8, {}, _entry(7, "cad", "1.0", 1)))],
    "no host id": [_group(5, "g", _reservation(8, None, _entry(7, "cad", "1.0", 1)))],
    "missing and null values": [
        {"id": 6, "reservations": [{"reservationEntries": [{"featureName": "cad"}]}]},
        _group(None, "g", _reservation(None, ETHERNET, _entry(None, "cad", "", None, None))),
    ],
    "numbers as text": [
        _group("11", "g", _reservation("12", ETHERNET, _entry("13", "cad", "1", "2")))
    ],
    "extra fields": [
        {
            **_group(1, "g", _reservation(1, ETHERNET, {**_entry(1, "cad", "1.0", 2), "x": [1]})),
            "creationDate": "2026-12-01T00:00:00Z",
            "ipAddress": "127.0.0.1",
        }
    ],
    "unicode names": [_group(1, "vlm-é", _reservation(1, {"type": "USER", "value": "zoë"}))],
    "no groups": [],
}


@pytest.fixture
def db(fresh_db: Database, backend: str) -> Database:
    if backend != "duckdb":
        pytest.skip("DuckDB reads the digest; PostgreSQL has none (test_postgres_has_no_digest)")
    return fresh_db


def test_postgres_has_no_digest(fresh_db: Database, backend: str) -> None:
    """On PostgreSQL every answer is decoded and compared row by row."""
    body = json.dumps(TYPED_SHAPES["owned and foreign groups"]).encode()
    expected_some = backend == "duckdb"
    assert (answer_mirror_digest(fresh_db, body, SERVER, PREFIX) is not None) is expected_some


@pytest.mark.parametrize("shape", TYPED_SHAPES)
def test_the_answers_digest_is_the_digest_of_its_rows(db, shape) -> None:
    body = json.dumps(TYPED_SHAPES[shape]).encode()
    docs = decode_inline_groups(body)
    assert docs is not None, "the typed decode takes this shape"
    rows = doc_mirror_rows(SERVER, docs, PREFIX)
    db.write(lambda cur: replace_mirror(cur, SERVER, mirror_table(rows)))

    assert answer_mirror_digest(db, body, SERVER, PREFIX) == stored_mirror_digest(db, SERVER)
    assert stored_mirror_digest(db, SERVER)[0] == len(rows)


@pytest.mark.parametrize(
    "change",
    ["count", "state", "host", "group name", "entry id", "prefix", "server", "one row less"],
)
def test_any_change_of_a_row_changes_the_digest(db, change) -> None:
    groups = TYPED_SHAPES["owned and foreign groups"]
    rows = doc_mirror_rows(SERVER, decode_inline_groups(json.dumps(groups).encode()), PREFIX)
    db.write(lambda cur: replace_mirror(cur, SERVER, mirror_table(rows)))
    changed = json.loads(json.dumps(groups))
    entry = changed[1]["reservations"][0]["reservationEntries"][0]
    server, prefix = SERVER, PREFIX
    if change == "count":
        entry["featureCount"] = 4
    elif change == "state":
        entry["state"] = "DISABLED"
    elif change == "host":
        changed[1]["reservations"][0]["hostId"]["value"] = "alicia"
    elif change == "group name":
        changed[0]["name"] = "vlm-ETHERNET-AABBCCDDEEFE"
    elif change == "entry id":
        entry["id"] = 99
    elif change == "prefix":
        prefix = "ops-"
    elif change == "server":
        server = SERVER + 1
    else:
        del changed[1]["reservations"][1]

    fresh = answer_mirror_digest(db, json.dumps(changed).encode(), server, prefix)

    assert fresh is not None and fresh != stored_mirror_digest(db, SERVER)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"groups": []}',
        json.dumps([{"id": 1, "name": "g"}]).encode(),
        json.dumps([{"id": 1, "name": "g", "reservations": []}]).encode(),
        json.dumps(
            [{"id": 1, "name": "g", "reservations": [{"id": 2, "hostId": ETHERNET}]}]
        ).encode(),
    ],
    ids=["not JSON", "an object", "no reservations", "empty reservations", "no entries listed"],
)
def test_an_answer_the_typed_decode_does_not_take_has_no_digest(db, body) -> None:
    assert decode_inline_groups(body) is None
    assert answer_mirror_digest(db, body, SERVER, PREFIX) is None


def test_no_temporary_file_means_no_digest(db, monkeypatch, tmp_path) -> None:
    """The answer is then decoded and compared row by row, as on PostgreSQL."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    body = json.dumps(TYPED_SHAPES["owned and foreign groups"]).encode()

    assert answer_mirror_digest(db, body, SERVER, PREFIX) is None


CAROL = {"hostidType": "USER", "hostidValue": "carol"}
CLIENT_HOST_SHAPES = {
    "hostidType and hostidValue under hostId": _reservation(7, CAROL),
    "type and value under hostid": _reservation(
        7, {"type": "USER", "value": "carol"}, key="hostid"
    ),
    "hostid beside an empty hostId": {**_reservation(7, {}), "hostid": CAROL},
}


@pytest.mark.parametrize("shape", CLIENT_HOST_SHAPES)
def test_an_answer_naming_hosts_with_the_client_records_fields_has_no_digest(db, shape) -> None:
    """The typed decode reads the host from those fields; the JSON reader is not asked to, so
    such an answer is decoded and compared row by row."""
    body = json.dumps([_group(4, "g", CLIENT_HOST_SHAPES[shape])]).encode()
    docs = decode_inline_groups(body)
    assert docs is not None
    assert doc_mirror_rows(SERVER, docs, PREFIX)[0][5:7] == ("USER", "carol")

    assert answer_mirror_digest(db, body, SERVER, PREFIX) is None
