"""The audit log's changed keys, and the before/after panel they summarise."""

from __future__ import annotations

import json

import pytest

from vlm.ui.audit_detail import changed_keys, detail_frame, with_changes

CASES = [
    ({"id": 1, "count": 2}, {"id": 1, "count": 3}, "count"),
    ({"name": "a", "gone": 1}, {"name": "a", "new": 2}, "gone, new"),
    (None, {"id": 1, "count": 2}, "id, count"),
    ({"id": 1}, None, "id"),
    ({"id": 1}, {"id": 1}, ""),
    (7, 8, "(value)"),
    (None, None, ""),
]


def _text(value: object) -> str | None:
    return None if value is None else json.dumps(value)


@pytest.mark.parametrize(("before", "after", "expected"), CASES)
def test_changed_keys_name_what_changed_as_the_panel_marks_it(before, after, expected) -> None:
    assert changed_keys(_text(before), _text(after)) == expected
    panel = detail_frame(_text(before), _text(after))
    assert ", ".join(panel.loc[panel["changed"], "key"]) == expected


def test_the_log_gains_a_changed_column_row_by_row() -> None:
    import pandas as pd

    log = pd.DataFrame(
        {"before": [_text(b) for b, _, _ in CASES], "after": [_text(a) for _, a, _ in CASES]}
    )
    shown = with_changes(log)
    assert shown["changed"].tolist() == [expected for _, _, expected in CASES]
    assert "changed" not in log.columns
