"""The labels pickers show."""

from __future__ import annotations

import pandas as pd

from vlm.ui.pickers import pool_labels


def test_pickers_label_each_pool_by_vlm_name_and_manager() -> None:
    pools = pd.DataFrame(
        {"id": [4, 2], "vlm_name": ["CAD", "EDA"], "name": ["team a", "b"], "manager": ["m", "n"]}
    )
    assert pool_labels(pools) == {4: "CAD / team a (manager m)", 2: "EDA / b (manager n)"}
    assert pool_labels(pools.head(0)) == {}
