"""The Dashboard's per-pool chart: every pool up to POOL_BARS, else those with most allocated."""

from __future__ import annotations

import json

import pandas as pd

from vlm.ui.dashboard import POOL_BARS, VLM_BARS, pool_chart, vlm_chart


def pools(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [f"vlm / pool {i:04d}" for i in range(n)],
            "allocated": [(i * 37) % 101 for i in range(n)],
            "available": [5] * n,
            "over_committed": [False] * n,
        }
    )


def bars(figure) -> tuple[str, list[str]]:
    spec = json.loads(figure.to_json())
    return spec["layout"]["title"]["text"], spec["data"][0]["x"]


def test_up_to_the_limit_every_pool_is_drawn_in_its_order():
    frame = pools(POOL_BARS)
    title, names = bars(pool_chart(frame, "Per virtual pool"))
    assert title == "Per virtual pool"
    assert names == frame["name"].tolist()


def test_beyond_the_limit_the_pools_with_most_allocated_are_drawn_and_the_title_says_so():
    frame = pools(2000)
    title, names = bars(pool_chart(frame, "Per virtual pool"))
    assert title == f"Per virtual pool: the {POOL_BARS} with most allocated, of 2,000"
    assert len(names) == POOL_BARS
    shown = frame[frame["name"].isin(names)]
    hidden = frame[~frame["name"].isin(names)]
    assert shown["allocated"].min() >= hidden["allocated"].max()


def vlms(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [f"vlm {i:03d}" for i in range(n)],
            "allocated": [1] * n,
            "pooled_unallocated": [1] * n,
            "poolable": [1] * n,
            "reserved_outside": [0] * n,
            "total": [(i * 13) % 97 for i in range(n)],
            "deficit": [3 if i in (150, 199) else 0 for i in range(n)],
        }
    )


def test_every_vlm_up_to_the_limit_and_beyond_it_over_committed_then_largest_first():
    few = vlms(VLM_BARS)
    title, names = bars(vlm_chart(few, "Per virtual license manager"))
    assert title == "Per virtual license manager"
    assert names[0] == "vlm 000" and len(names) == VLM_BARS

    many = vlms(200)
    title, names = bars(vlm_chart(many, "Per virtual license manager"))
    assert (
        title == f"Per virtual license manager: {VLM_BARS} of 200, over-committed and largest first"
    )
    assert len(names) == VLM_BARS
    assert names[:2] == ["⚠ vlm 199", "⚠ vlm 150"]  # both over-committed: larger total first
    shown = many[many["name"].isin([n.removeprefix("⚠ ") for n in names])]
    hidden = many.drop(shown.index)
    largest = shown[shown["deficit"] == 0]
    assert largest["total"].min() >= hidden["total"].max()
