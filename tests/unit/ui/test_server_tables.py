"""Server tables paint over-committed features and servers in error."""

from __future__ import annotations

import pandas as pd

from vlm.ui.server_tables import BAD_ROW_STYLE, _highlight


def _painted_rows(styled) -> set[int]:
    """Rows whose cells the Styler's CSS (the part before the table) gives the red style."""
    css = styled.to_html().split("</style>")[0]
    assert css.count(BAD_ROW_STYLE.split(": ")[1]) >= 1
    return {row for row in range(10) if f"_row{row}_col0" in css}


def test_only_over_committed_features_are_painted() -> None:
    features = pd.DataFrame({"feature_name": ["a", "b", "c"], "deficit": [0, 3, None]})
    assert _painted_rows(_highlight(features)) == {1}


def test_only_servers_in_error_are_painted() -> None:
    servers = pd.DataFrame({"name": ["x", "y", "z"], "status": ["ok", "error", "error"]})
    assert _painted_rows(_highlight(servers)) == {1, 2}


def test_a_table_with_nothing_to_paint_is_passed_on_unstyled() -> None:
    features = pd.DataFrame({"feature_name": ["a"], "deficit": [0], "status": ["ok"]})
    assert _highlight(features) is features
    assert _highlight(pd.DataFrame({"name": ["x"]})).equals(pd.DataFrame({"name": ["x"]}))
