"""The hourly summaries as pandas computes them from snapshot rows (the reference the store's
SQL must match), and the rows the store holds, in the same shape."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vlm.store.figures import COUNTED_CONCURRENT

FIGURES = ["total", "used", "reserved"]
SUMMARY_COLUMNS = [
    "server_feature_id",
    "hour_end",
    "samples",
    *FIGURES,
    *(f"{name}_change" for name in FIGURES),
    "first_hour",
]


def summary_of(snapshots: pd.DataFrame) -> list[tuple]:
    """Per feature and hour (snapshots taken in (hour_end - 1 h, hour_end]): how many, the last
    one's figures, the move since the feature's last snapshot of an earlier hour (from 0 for
    its first hour) and whether its first snapshot falls in it; by feature and hour."""
    rows = snapshots.sort_values(["server_feature_id", "taken_at", *FIGURES]).reset_index(drop=True)
    by_feature = rows.groupby("server_feature_id")
    rows["hour_end"] = pd.to_datetime(rows["taken_at"]).dt.ceil("h")
    rows["first"] = by_feature.cumcount() == 0
    for name in FIGURES:
        rows[f"{name}_change"] = rows[name] - by_feature[name].shift(1, fill_value=0)
    hours = rows.groupby(["server_feature_id", "hour_end"], sort=True)
    summary = pd.DataFrame(
        {
            "samples": hours.size(),
            **{name: hours[name].last() for name in FIGURES},
            **{f"{name}_change": hours[f"{name}_change"].sum() for name in FIGURES},
            "first_hour": hours["first"].any(),
        }
    ).reset_index()
    return [_plain(row) for row in summary[SUMMARY_COLUMNS].itertuples(index=False, name=None)]


def _plain(row: tuple) -> tuple:
    return tuple(
        value.to_pydatetime() if isinstance(value, pd.Timestamp) else _scalar(value)
        for value in row
    )


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def stored_summary(db: Any) -> list[tuple]:
    """The rows of utilization_hourly, by feature and hour."""
    return [
        tuple(row)
        for row in db.query(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM utilization_hourly ORDER BY 1, 2"
        )
    ]


def stored_snapshots(db: Any) -> pd.DataFrame:
    """Every snapshot row."""
    return db.query_df(
        "SELECT server_feature_id, taken_at, total, used, reserved FROM utilization_snapshots"
    )


def counted_of(summary: list[tuple], servers_of_counted: dict[int, int]) -> list[tuple]:
    """The per-feature summary added up per server and hour over the counted features
    (server_feature_id -> server_id): changes and features started, by server and hour."""
    sums: dict[tuple, list[int]] = {}
    for sf, hour, *_, total_change, used_change, reserved_change, first in summary:
        if sf in servers_of_counted:
            found = sums.setdefault((servers_of_counted[sf], hour), [0, 0, 0, 0])
            for i, value in enumerate((total_change, used_change, reserved_change, int(first))):
                found[i] += value
    return [(*key, *values) for key, values in sorted(sums.items())]


def counted_features(db: Any) -> dict[int, int]:
    """server_feature_id -> server_id of the counted concurrent features."""
    return dict(
        db.query(f"SELECT id, server_id FROM server_features sf WHERE {COUNTED_CONCURRENT}")
    )


def stored_counted(db: Any) -> list[tuple]:
    """The rows of counted_utilization_hourly, by server and hour."""
    return [
        tuple(row)
        for row in db.query(
            "SELECT server_id, hour_end, total_change, used_change, reserved_change, "
            "features_started FROM counted_utilization_hourly ORDER BY 1, 2"
        )
    ]
