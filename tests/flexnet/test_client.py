"""FlexNetClient against the emulator over real loopback HTTP."""

from __future__ import annotations

import socket
import ssl
import threading

import certifi
import httpx
import pytest

from vlm.flexnet import (
    AuthenticationError,
    FeatureSlice,
    FlexNetClient,
    FlexNetError,
    HostId,
    NotFoundError,
    RefusedError,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    TransientError,
    sum_feature_slices,
)
from vlm.flexnet.emulator import RunningEmulator, start_emulator
from vlm.flexnet.models import earliest_expiry, parse_count, sum_raw_feature_slices
from vlm.sync.mirror import answer_mirror_rows, raw_mirror_rows

from .conftest import SMALL_FIXTURE


def _group(name: str, *reservations: tuple[str, list[tuple[str, str, int]]]) -> ReservationGroup:
    """A group of ETHERNET reservations: (mac, [(feature, version, count), ...])."""
    return ReservationGroup(
        id=None,
        name=name,
        reservations=tuple(
            Reservation(
                host_id=HostId("ETHERNET", mac),
                entries=tuple(ReservationEntry(f, v, c) for f, v, c in entries),
            )
            for mac, entries in reservations
        ),
    )


def _totals(flex: FlexNetClient, active_only: bool = True) -> dict[tuple[str, str], object]:
    return {(t.name, t.version): t for t in flex.feature_totals(active_only=active_only)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- authentication ------------------------------------------------------------------------


def test_login_once_and_reuse_token(client: FlexNetClient, emulator: RunningEmulator) -> None:
    client.feature_slices()
    client.clients()
    client.reservation_groups()
    assert emulator.state.authorize_calls == 1


def test_health_needs_no_login(client: FlexNetClient, emulator: RunningEmulator) -> None:
    health = client.health()
    assert health["serverInstanceID"] == SMALL_FIXTURE["instanceId"]
    assert health["security"] == "enabled"
    assert emulator.state.authorize_calls == 0


def test_token_refreshed_when_close_to_expiry() -> None:
    with start_emulator(SMALL_FIXTURE, token_lifetime=30) as running:
        with FlexNetClient(running.url, username="admin", password="admin") as flex:
            flex.clients()
            flex.clients()
        assert running.state.authorize_calls == 2


def test_expired_token_triggers_one_relogin(
    client: FlexNetClient, emulator: RunningEmulator
) -> None:
    client.clients()
    emulator.state.set_faults({"expire_tokens": True})
    assert client.clients() == []
    assert emulator.state.authorize_calls == 2
    assert emulator.state.request_counts["GET /api/1.0/clients"] == 3


def test_401_after_relogin_is_authentication_error() -> None:
    with start_emulator(SMALL_FIXTURE, token_lifetime=0) as running:
        flex = FlexNetClient(running.url, username="admin", password="admin")
        with flex, pytest.raises(AuthenticationError) as caught:
            flex.clients()
        assert caught.value.status == 401
        assert running.state.authorize_calls == 2


def test_bad_password_is_authentication_error(emulator: RunningEmulator) -> None:
    flex = FlexNetClient(emulator.url, username="admin", password="wrong")
    with flex, pytest.raises(AuthenticationError) as caught:
        flex.feature_slices()
    assert caught.value.status == 401
    assert caught.value.message == "Bad credentials"


def test_missing_role_is_authentication_error(emulator: RunningEmulator) -> None:
    with FlexNetClient(emulator.url, username="reader", password="reader") as flex:
        assert flex.feature_slices()
        with pytest.raises(AuthenticationError) as caught:
            flex.create_reservation_group(_group("reader-group"))
    assert caught.value.status == 403
    assert emulator.state.list_groups("reader-group") == []


def test_security_disabled_never_logs_in(
    open_client: FlexNetClient, open_emulator: RunningEmulator
) -> None:
    assert open_client.health()["security"] == "disabled"
    assert len(open_client.feature_slices()) == len(SMALL_FIXTURE["features"])
    created = open_client.create_reservation_group(_group("open", ("AA01", [("solver", "1.0", 1)])))
    assert created.id is not None
    assert open_emulator.state.authorize_calls == 0


def test_concurrent_calls_share_one_login(client: FlexNetClient, emulator: RunningEmulator) -> None:
    results: list[int] = []
    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(len(client.feature_slices()))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [len(SMALL_FIXTURE["features"])] * 40
    assert emulator.state.authorize_calls == 1


# -- features ------------------------------------------------------------------------------


def test_slices_of_one_feature_are_summed(client: FlexNetClient) -> None:
    slices = [s for s in client.feature_slices() if (s.name, s.version) == ("solver", "1.0")]
    assert [s.count for s in slices] == [10, 5, 2]
    assert len({s.feature_id for s in slices}) == 3
    total = _totals(client)[("solver", "1.0")]
    assert (total.total, total.used, total.reserved, total.slices) == (17, 0, 0, 3)
    assert total.expiry == min(s.expiry for s in slices if s.expiry != "permanent")


def test_active_only_hides_expired_and_future_slices(client: FlexNetClient) -> None:
    every = {(s.name, s.version) for s in client.feature_slices(active_only=False)}
    active = {(s.name, s.version) for s in client.feature_slices(active_only=True)}
    assert {("solver", "0.9"), ("solver", "2.0")} <= every
    assert every - active == {("solver", "0.9"), ("solver", "2.0")}
    assert ("solver", "0.9") not in _totals(client)
    assert ("solver", "0.9") in _totals(client, active_only=False)


def test_non_numeric_count_is_kept_raw_and_counts_zero(client: FlexNetClient) -> None:
    odd = next(s for s in client.feature_slices() if s.name == "odd")
    assert odd.count is None
    assert odd.raw["featureCount"] == "unlimited"
    assert _totals(client)[("odd", "1.0")].total == 0


def test_licence_model_flags(client: FlexNetClient) -> None:
    totals = _totals(client)
    assert totals[("viewer", "1.0")].uncounted and totals[("viewer", "1.0")].total == 0
    assert totals[("tokens", "1.0")].metered and not totals[("tokens", "1.0")].concurrent
    assert totals[("solver", "1.0")].concurrent and not totals[("solver", "1.0")].metered


def test_sum_feature_slices_pure() -> None:
    def row(sid: int, count: object, expiry: str, used: int = 0) -> FeatureSlice:
        data = {"id": sid, "featureName": "f", "featureVersion": "1", "featureCount": count}
        return FeatureSlice.from_json({**data, "expiry": expiry, "used": used, "concurrent": True})

    totals = sum_feature_slices(
        [row(1, 4, "permanent", 1), row(2, "7", "2031-01-05", 2), row(3, "n/a", "2030-02-01")]
    )
    assert len(totals) == 1
    assert (totals[0].total, totals[0].used, totals[0].slices) == (11, 3, 3)
    assert totals[0].expiry == "2030-02-01"
    assert earliest_expiry(["permanent", None]) == "permanent"
    assert parse_count("12.0") == 12 and parse_count(True) is None and parse_count("x") is None


def test_raw_slices_sum_like_parsed_slices() -> None:
    raw = [
        {"id": 1, "featureName": "f", "featureVersion": "1", "featureCount": 4, "used": "1",
         "expiry": "permanent", "concurrent": "true"},
        {"id": 2, "featureName": "f", "featureVersion": "1", "featureCount": "7", "used": 2.0,
         "expiry": "2031-01-05", "metered": 1},
        {"id": 3, "featureName": "f", "featureVersion": "1", "featureCount": "n/a",
         "expiry": "2030-02-01", "reserved": 2},
        {"id": 4, "featureName": "g", "featureVersion": "2", "uncounted": True},
        "not an object",
    ]  # fmt: skip
    parsed = sum_feature_slices(FeatureSlice.from_json(r) for r in raw if isinstance(r, dict))
    assert sum_raw_feature_slices(raw) == parsed
    assert [(t.name, t.total, t.used, t.reserved, t.slices) for t in parsed] == [
        ("f", 11, 3, 2, 3),
        ("g", 0, 0, 0, 1),
    ]
    assert parsed[0].concurrent and parsed[0].metered and parsed[1].uncounted


def test_an_unchanged_answer_is_not_parsed_again(
    client: FlexNetClient, emulator: RunningEmulator
) -> None:
    totals, fingerprint = client.fingerprinted_feature_totals()
    assert totals == client.feature_totals()
    assert client.fingerprinted_feature_totals(unless=fingerprint) == (None, fingerprint)
    groups, groups_fp = client.fingerprinted_reservation_groups()
    assert groups is not None and groups_fp is not None
    assert client.fingerprinted_reservation_groups(unless=groups_fp) == (None, groups_fp)
    answer, answer_fp = client.fingerprinted_group_answer()
    assert answer is not None and answer.docs is not None and answer_fp == groups_fp
    assert answer_mirror_rows(1, answer, "vlm-") == raw_mirror_rows(1, groups, "vlm-")
    assert client.fingerprinted_group_answer(unless=groups_fp) == (None, groups_fp)

    set_count = {"featureName": "solver", "featureVersion": "1.0", "count": 3}
    httpx.post(f"{emulator.url}/_emulator/features/count", json=set_count, timeout=5)
    changed, new_fp = client.fingerprinted_feature_totals(unless=fingerprint)
    assert new_fp != fingerprint and changed is not None
    assert {(t.name, t.version): t.total for t in changed}[("solver", "1.0")] == 3


# -- reservation groups --------------------------------------------------------------------


def test_create_group_returns_server_ids(client: FlexNetClient) -> None:
    created = client.create_reservation_group(
        _group("team-a", ("AA01", [("solver", "1.0", 2), ("mesher", "3.2", 1)]), ("AA02", []))
    )
    assert created.id is not None and created.name == "team-a"
    assert [r.host_id for r in created.reservations] == [
        HostId("ETHERNET", "AA01"),
        HostId("ETHERNET", "AA02"),
    ]
    assert all(r.id is not None for r in created.reservations)
    assert [(e.feature_name, e.count, e.state) for e in created.reservations[0].entries] == [
        ("solver", 2, "ACTIVE"),
        ("mesher", 1, "ACTIVE"),
    ]
    assert all(e.id is not None for e in created.reservations[0].entries)
    assert _totals(client)[("solver", "1.0")].reserved == 2


def test_groups_listed_with_inline_reservations(
    client: FlexNetClient, emulator: RunningEmulator
) -> None:
    client.create_reservation_group(_group("team-b", ("BB01", [("solver", "1.0", 1)])))
    groups = {g.name: g for g in client.reservation_groups_with_reservations()}
    assert set(groups) == {"preexisting", "team-b"}
    assert groups["preexisting"].reservations[0].host_id == HostId("ETHERNET", "0050569A1B2C")
    assert groups["team-b"].reservations[0].entries[0].count == 1
    per_group_reads = [k for k in emulator.state.request_counts if k.endswith("/reservations")]
    assert per_group_reads == []
    assert [g.name for g in client.reservation_groups(name="team-b")] == ["team-b"]
    assert client.reservation_groups(name="missing") == []


def test_reservations_filtered_by_hostid(client: FlexNetClient) -> None:
    created = client.create_reservation_group(
        _group("team-c", ("CC01", [("solver", "1.0", 1)]), ("CC02", [("solver", "1.0", 1)]))
    )
    assert created.id is not None
    assert len(client.reservations(created.id)) == 2
    only = client.reservations(created.id, hostid="CC02")
    assert [r.host_id.value for r in only] == ["CC02"]


def test_duplicate_group_name_refused(client: FlexNetClient) -> None:
    with pytest.raises(RefusedError) as caught:
        client.create_reservation_group(_group("preexisting", ("DD01", [])))
    assert caught.value.status == 409
    assert "preexisting" in caught.value.message


def test_duplicate_host_id_refused(client: FlexNetClient) -> None:
    with pytest.raises(RefusedError) as caught:
        client.create_reservation_group(_group("steal", ("0050569A1B2C", [("solver", "1.0", 1)])))
    assert caught.value.status == 409
    assert "0050569A1B2C" in caught.value.message
    assert client.reservation_groups(name="steal") == []


def test_insufficient_count_refused_and_nothing_created(client: FlexNetClient) -> None:
    group = _group("greedy", ("EE01", [("solver", "1.0", 10)]), ("EE02", [("mesher", "3.2", 3)]))
    with pytest.raises(RefusedError) as caught:
        client.create_reservation_group(group)
    assert caught.value.status == 409
    assert "'mesher'" in caught.value.message and "available 2" in caught.value.message
    assert client.reservation_groups(name="greedy") == []
    assert _totals(client)[("solver", "1.0")].reserved == 0


def test_unknown_or_metered_feature_refused(client: FlexNetClient) -> None:
    for feature in ("nonexistent", "tokens"):
        with pytest.raises(RefusedError) as caught:
            client.create_reservation_group(
                _group(f"bad-{feature}", ("FF01", [(feature, "1.0", 1)]))
            )
        assert caught.value.status == 400
        assert feature in caught.value.message


def test_add_entries(client: FlexNetClient, emulator: RunningEmulator) -> None:
    created = client.create_reservation_group(_group("grow", ("GG01", [("solver", "1.0", 1)])))
    assert created.id is not None and created.reservations[0].id is not None
    client.add_entries(
        created.id, created.reservations[0].id, [ReservationEntry("solver", "1.0", 3)]
    )
    entries = client.reservations(created.id)[0].entries
    assert [e.count for e in entries] == [1, 3]
    assert _totals(client)[("solver", "1.0")].reserved == 4
    with pytest.raises(RefusedError) as caught:
        client.add_entries(
            created.id, created.reservations[0].id, [ReservationEntry("solver", "1.0", 14)]
        )
    assert "'solver'" in caught.value.message and "available 13" in caught.value.message


def test_deletes_succeed_on_410_and_404_is_not_found(client: FlexNetClient) -> None:
    created = client.create_reservation_group(
        _group("short-lived", ("HH01", [("solver", "1.0", 1), ("solver", "1.0", 2)]), ("HH02", []))
    )
    gid = created.id
    first, second = created.reservations
    assert gid is not None and first.id is not None and second.id is not None
    entry_id = first.entries[0].id
    assert entry_id is not None
    client.delete_entry(gid, first.id, entry_id)
    assert [e.count for e in client.reservations(gid, hostid="HH01")[0].entries] == [2]
    with pytest.raises(NotFoundError):
        client.delete_entry(gid, first.id, entry_id)
    client.delete_reservation(gid, second.id)
    assert [r.host_id.value for r in client.reservations(gid)] == ["HH01"]
    client.delete_group(gid)
    assert client.reservation_groups(name="short-lived") == []
    with pytest.raises(NotFoundError):
        client.delete_group(gid)
    with pytest.raises(NotFoundError):
        client.reservations(gid)
    assert _totals(client)[("solver", "1.0")].reserved == 0


# -- transport failures --------------------------------------------------------------------


def test_unreachable_server_is_transient() -> None:
    flex = FlexNetClient(f"http://127.0.0.1:{_free_port()}", timeout=2, retries=0)
    with flex, pytest.raises(TransientError) as caught:
        flex.health()
    assert "127.0.0.1" in caught.value.message


def test_injected_503_is_transient_and_gets_are_retried(
    client: FlexNetClient, emulator: RunningEmulator
) -> None:
    client.clients()
    emulator.state.set_faults({"error_rate": 1.0, "error_statuses": [503]})
    with pytest.raises(TransientError) as caught:
        client.clients()
    assert caught.value.status == 503
    assert emulator.state.request_counts["GET /api/1.0/clients"] == 1 + 3


def test_writes_are_not_retried(client: FlexNetClient, emulator: RunningEmulator) -> None:
    client.clients()
    emulator.state.set_faults({"error_rate": 1.0, "error_statuses": [500]})
    with pytest.raises(TransientError) as caught:
        client.create_reservation_group(_group("never"))
    assert caught.value.status == 500
    assert emulator.state.request_counts["POST /api/1.0/reservationgroups"] == 1
    emulator.state.clear_faults()
    assert client.reservation_groups(name="never") == []


def test_dropped_connection_is_transient(client: FlexNetClient, emulator: RunningEmulator) -> None:
    client.clients()
    emulator.state.set_faults({"drop_rate": 1.0})
    with pytest.raises(TransientError) as caught:
        client.clients()
    assert caught.value.status is None
    emulator.state.clear_faults()
    assert client.clients() == []


def test_timeout_is_transient(emulator: RunningEmulator) -> None:
    emulator.state.set_faults({"latency_ms": 600})
    flex = FlexNetClient(emulator.url, timeout=0.2, retries=0)
    with flex, pytest.raises(TransientError) as caught:
        flex.health()
    assert "timed out" in caught.value.message


def test_get_retry_recovers_from_a_single_failure(
    client: FlexNetClient, emulator: RunningEmulator
) -> None:
    client.clients()
    emulator.state.set_faults({"drop_rate": 1.0})
    timer = threading.Timer(0.05, emulator.state.clear_faults)
    timer.start()
    try:
        assert client.clients() == []
    finally:
        timer.cancel()
    assert emulator.state.request_counts["GET /api/1.0/clients"] >= 3


def test_verify_option_is_passed_to_httpx() -> None:
    with FlexNetClient("https://127.0.0.1:1", verify=False) as insecure:
        context = insecure._http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_NONE
    with FlexNetClient("https://127.0.0.1:1") as secure:
        context = secure._http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED
    with FlexNetClient("https://127.0.0.1:1", verify=certifi.where()) as bundle:
        context = bundle._http._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.cert_store_stats()["x509_ca"] > 10
    with pytest.raises(FlexNetError) as caught:
        FlexNetClient("https://127.0.0.1:1", verify="/nonexistent/ca.pem")
    assert "/nonexistent/ca.pem" in caught.value.message


def _tls_context(client: FlexNetClient) -> ssl.SSLContext:
    return client._http._transport._pool._ssl_context  # type: ignore[attr-defined]


def test_clients_share_one_tls_context_per_setting_and_the_certificate_variables_count(
    monkeypatch,
) -> None:
    """Loading the CA bundle costs ~30 ms: clients made with the same setting share it."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with FlexNetClient("https://127.0.0.1:1") as one, FlexNetClient("https://127.0.0.1:2") as two:
        assert _tls_context(one) is _tls_context(two)
    with FlexNetClient("https://127.0.0.1:1", verify=False) as insecure:
        assert _tls_context(insecure) is not _tls_context(one)
        assert _tls_context(insecure).verify_mode == ssl.CERT_NONE
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    with FlexNetClient("https://127.0.0.1:1") as from_variable:
        assert _tls_context(from_variable) is not _tls_context(one)
        assert _tls_context(from_variable).verify_mode == ssl.CERT_REQUIRED
