"""One factory from a connection record to a client: one TLS choice for Test connection and sync."""

from __future__ import annotations

import pytest

from vlm.flexnet.connection import ServerConnection

RECORD = {"base_url": "https://lls.example:7070", "instance": None, "username": "admin"}


@pytest.mark.parametrize(
    ("verify_tls", "ca_path", "expected"),
    [
        (False, "/etc/ssl/corp.pem", False),
        (False, None, False),
        (True, "/etc/ssl/corp.pem", "/etc/ssl/corp.pem"),
        (True, None, True),
        (None, None, True),
    ],
)
def test_verification_off_wins_over_a_ca_path(verify_tls, ca_path, expected) -> None:
    record = {**RECORD, "verify_tls": verify_tls, "ca_path": ca_path}
    assert ServerConnection.from_record(record, "pw").verify == expected


def test_record_defaults_and_client_settings() -> None:
    connection = ServerConnection.from_record({**RECORD, "timeout_seconds": 3}, "secret")
    assert (connection.instance, connection.timeout_seconds) == ("~", 3.0)
    assert "secret" not in repr(connection)
    with connection.client() as client:
        assert client.api_root == "https://lls.example:7070/api/1.0/instances/~"
        assert client._http.timeout.read == 3.0
