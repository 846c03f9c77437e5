"""Emulator fixtures built from a generated estate: features and every reservation group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.estate_sql import FOREIGN_FEATURES, FOREIGN_GROUPS
from vlm.domain import reservation_group_name
from vlm.store import Database

FEATURES_SQL = """
SELECT s.name, sf.feature_name, sf.feature_version, sf.total
FROM server_features sf JOIN license_servers s ON s.id = sf.server_id
ORDER BY s.name, sf.feature_name, sf.feature_version
"""

GROUPS_SQL = """
WITH held AS (
    SELECT s.name AS server, a.host_type, a.host_id, a.feature_name, a.feature_version,
        SUM(a.count)::INTEGER AS count
    FROM allocations a
    JOIN server_features sf ON sf.id = a.server_feature_id
    JOIN license_servers s ON s.id = sf.server_id
    WHERE a.state IN ('pending', 'applied')
    GROUP BY ALL
)
SELECT server, host_type, host_id,
    list({'featureName': feature_name, 'featureVersion': feature_version, 'featureCount': count}
         ORDER BY feature_name, feature_version)
FROM held GROUP BY ALL ORDER BY server, host_type, host_id
"""


def _foreign_groups(server: str) -> list[dict[str, Any]]:
    """Groups VLM does not own (they count as reserved by others)."""
    entries = [
        {"featureName": f"feat_{f:03d}", "featureVersion": "1.0", "featureCount": 1}
        for f in range(FOREIGN_FEATURES)
    ]
    return [
        {
            "name": f"ops-reserve-{n}",
            "reservations": [
                {
                    "hostId": {"type": "USER", "value": f"ops{n}-{server}"},
                    "reservationEntries": entries,
                }
            ],
        }
        for n in range(FOREIGN_GROUPS)
    ]


def build_fixtures(db: Database, prefix: str) -> dict[str, dict[str, Any]]:
    """One emulator fixture per license server name, matching the database exactly."""
    fixtures: dict[str, dict[str, Any]] = {}
    for server, name, version, total in db.query(FEATURES_SQL):
        fixture = fixtures.setdefault(
            server,
            {
                "instanceId": f"BENCH{server.replace('-', '').upper()}",
                "features": [],
                "reservationGroups": _foreign_groups(server),
            },
        )
        fixture["features"].append(
            {
                "featureName": name,
                "featureVersion": version,
                "featureCount": int(total),
                "expiry": "permanent",
                "vendor": "benchworks",
            }
        )
    for server, host_type, host_id, entries in db.query(GROUPS_SQL):
        fixtures[server]["reservationGroups"].append(
            {
                "name": reservation_group_name(prefix, host_type, host_id),
                "reservations": [
                    {"hostId": {"type": host_type, "value": host_id}, "reservationEntries": entries}
                ],
            }
        )
    return fixtures


def write_fixtures(fixtures: dict[str, dict[str, Any]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for server, fixture in fixtures.items():
        (directory / f"{server}.json").write_text(json.dumps(fixture), encoding="utf-8")


def fixture_paths(directory: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(directory.glob("*.json"))}
