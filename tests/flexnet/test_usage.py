"""Who a license server says is using what (vlm.flexnet.usage): GET /clients rows with their
features, and GET /features/{id}/clients rows, in both host-id spellings."""

from __future__ import annotations

from vlm.flexnet.usage import (
    client_host,
    lists_features,
    sightings_of_clients,
    sightings_of_feature,
)

ANN = {"hostidType": "ETHERNET", "hostidValue": "A1A1A1A1A1A1"}


def feature(name: str, count: object, version: str = "1.0") -> dict:
    return {"featureName": name, "featureVersion": version, "count": count}


def test_a_client_row_gives_each_feature_it_holds() -> None:
    rows = [{"hostid": ANN, "features": [feature("cad", 1), feature("viz", 2, "2.0")]}]
    assert sightings_of_clients(rows) == {
        ("ETHERNET", "A1A1A1A1A1A1", "cad", "1.0"),
        ("ETHERNET", "A1A1A1A1A1A1", "viz", "2.0"),
    }


def test_features_held_zero_times_or_without_a_name_are_not_use() -> None:
    rows = [{"hostid": ANN, "features": [feature("cad", 0), feature("", 1), feature("x", "n")]}]
    assert sightings_of_clients(rows) == set()


def test_host_ids_are_read_in_either_spelling_and_the_type_upper_cased() -> None:
    assert client_host({"hostid": ANN}) == ("ETHERNET", "A1A1A1A1A1A1")
    assert client_host({"hostId": {"type": "user", "value": "joe"}}) == ("USER", "joe")
    assert client_host({"requestHostid": ANN}) == ("ETHERNET", "A1A1A1A1A1A1")
    assert client_host({"hostid": {"hostidType": "", "hostidValue": "x"}}) is None
    assert client_host({}) is None


def test_rows_without_a_host_or_not_objects_are_skipped() -> None:
    rows = ["junk", {"features": [feature("cad", 1)]}, {"hostid": ANN, "features": None}]
    assert sightings_of_clients(rows) == set()


def test_a_server_lists_features_only_when_every_row_has_them() -> None:
    assert lists_features([{"hostid": ANN, "features": []}])
    assert lists_features([])
    assert not lists_features([{"hostid": ANN, "features": []}, {"hostid": ANN}])


def test_feature_usage_rows_count_only_clients_using_it() -> None:
    rows = [
        {"useCount": 2, "client": {"hostid": ANN}},
        {"useCount": 0, "client": {"hostid": {"hostidType": "USER", "hostidValue": "bo"}}},
        {"useCount": 1, "client": "junk"},
    ]
    assert sightings_of_feature("cad", "1.0", rows) == {("ETHERNET", "A1A1A1A1A1A1", "cad", "1.0")}
