"""Pool tables' grid links and allocated shares."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pandas as pd
import pytest

from vlm.ui.grid.selection import FEATURE_PARAM, POOL_PARAM
from vlm.ui.pool_forms import ALLOCATIONS_URL, allocations_url, with_grid_links

FEATURES = [("cad", "1.0"), ("a&b=c", "2 0"), ("Ünïcode/€", "%20"), ("", "")]


@pytest.mark.parametrize("feature", FEATURES)
def test_a_link_names_its_pool_and_feature_as_urlencode_would(feature) -> None:
    link = allocations_url(7, feature)
    params = {POOL_PARAM: "7", FEATURE_PARAM: f"{feature[0]} {feature[1]}"}
    assert link == f"{ALLOCATIONS_URL}?{urlencode(params, quote_via=quote)}"
    assert parse_qs(urlsplit(link).query, keep_blank_values=True) == {
        k: [v] for k, v in params.items()
    }


def test_a_pool_link_names_only_its_pool() -> None:
    assert allocations_url(12) == f"{ALLOCATIONS_URL}?{POOL_PARAM}=12"


def test_every_row_gets_its_own_link_and_share() -> None:
    features = pd.DataFrame(
        {
            "pool_id": [3, 3, 9],
            "feature_name": ["cad", "a&b=c", "cad"],
            "feature_version": ["1.0", "2 0", "1.0"],
            "allocated": [2, 0, 5],
            "quantity": [4, 0, 2],
        }
    )
    shown = with_grid_links(features, pool_column="pool_id")
    assert shown["allocations_link"].tolist() == [
        allocations_url(3, ("cad", "1.0")),
        allocations_url(3, ("a&b=c", "2 0")),
        allocations_url(9, ("cad", "1.0")),
    ]
    assert shown["allocated_share"].tolist() == [0.5, 0.0, 1.0]
    assert "allocations_link" not in features.columns

    pools = pd.DataFrame({"id": [5], "allocated": [1], "quantity": [3]})
    assert with_grid_links(pools)["allocations_link"].tolist() == [allocations_url(5)]
    assert with_grid_links(pools.head(0))["allocations_link"].tolist() == []
