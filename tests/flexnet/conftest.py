"""Emulators on loopback for the FlexNet client and emulator tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator import RunningEmulator, start_emulator

INSTANCE_ID = "TESTLLS00001"

SMALL_FIXTURE: dict[str, Any] = {
    "instanceId": INSTANCE_ID,
    "features": [
        {
            "featureName": "solver",
            "featureVersion": "1.0",
            "featureCount": 10,
            "expiry": "permanent",
        },
        {"featureName": "solver", "featureVersion": "1.0", "featureCount": 5, "expiry": "+90d"},
        {"featureName": "solver", "featureVersion": "1.0", "featureCount": 2, "expiry": "+20d"},
        {"featureName": "solver", "featureVersion": "0.9", "featureCount": 4, "expiry": "-10d"},
        {"featureName": "solver", "featureVersion": "2.0", "featureCount": 6, "starts": "+5d"},
        {"featureName": "mesher", "featureVersion": "3.2", "featureCount": 3, "expiry": "+1y"},
        {"featureName": "viewer", "featureVersion": "1.0", "uncounted": True},
        {"featureName": "tokens", "featureVersion": "1.0", "featureCount": 100, "metered": True},
        {"featureName": "odd", "featureVersion": "1.0", "featureCount": "unlimited"},
    ],
    "reservationGroups": [
        {
            "name": "preexisting",
            "reservations": [
                {
                    "hostId": {"type": "ETHERNET", "value": "0050569A1B2C"},
                    "reservationEntries": [
                        {"featureName": "mesher", "featureVersion": "3.2", "featureCount": 1}
                    ],
                }
            ],
        }
    ],
    "users": [
        {"user": "reader", "password": "reader", "roles": "ROLE_READ"},
        {"user": "nobody", "password": "nobody", "roles": "ROLE_OFFLINE"},
    ],
}


@pytest.fixture(scope="session")
def _secure_emulator() -> Iterator[RunningEmulator]:
    with start_emulator(SMALL_FIXTURE, admin_password="admin") as running:
        yield running


@pytest.fixture(scope="session")
def _open_emulator() -> Iterator[RunningEmulator]:
    with start_emulator(SMALL_FIXTURE, security=False) as running:
        yield running


@pytest.fixture
def emulator(_secure_emulator: RunningEmulator) -> RunningEmulator:
    """The secured emulator (admin/admin), reset to SMALL_FIXTURE."""
    _secure_emulator.state.reset()
    return _secure_emulator


@pytest.fixture
def open_emulator(_open_emulator: RunningEmulator) -> RunningEmulator:
    """An emulator with security disabled, reset to SMALL_FIXTURE."""
    _open_emulator.state.reset()
    return _open_emulator


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[FlexNetClient]:
    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as flex:
        yield flex


@pytest.fixture
def open_client(open_emulator: RunningEmulator) -> Iterator[FlexNetClient]:
    with FlexNetClient(open_emulator.url, timeout=5) as flex:
        yield flex


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    """A raw httpx client on the secured emulator's root URL."""
    with httpx.Client(base_url=emulator.url, timeout=5) as raw:
        yield raw


@pytest.fixture
def auth_headers(http: httpx.Client) -> dict[str, str]:
    """A bearer header for admin/admin obtained through /authorize."""
    answer = http.post(
        "/api/1.0/instances/~/authorize", json={"user": "admin", "password": "admin"}
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}
