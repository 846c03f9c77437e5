"""Pool tables' grid links and allocated shares."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pandas as pd
import pytest

from vlm.ui.grid.selection import FEATURE_PARAM, POOL_PARAM
from vlm.ui.messages import FeatureBounds
from vlm.ui.pool_forms import ALLOCATIONS_URL, allocations_url, quantity_fields, with_grid_links

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


def test_quantity_fields_keep_the_bounds_order_keys_and_captions() -> None:
    bounds = pd.DataFrame(
        {
            "feature_name": ["cad", "sim"],
            "feature_version": ["1.0", "2.0"],
            "quantity": [3, -1],
            "minimum": [2, 0],
            "maximum": [1, 9],
            "total": [10, 20],
            "deficit": [4, 0],
        }
    )
    prepared = quantity_fields(bounds)
    cad, sim = prepared.fields
    assert [f.feature for f in prepared.fields] == [("cad", "1.0"), ("sim", "2.0")]
    assert (cad.label, cad.value, sim.value) == ("cad 1.0", 3, 0)
    digest = hashlib.sha1(b"cad\x001.0").hexdigest()[:10]
    assert cad.key_suffix == f"_{digest}"
    assert prepared.bounds == {
        ("cad", "1.0"): FeatureBounds(2, 2),
        ("sim", "2.0"): FeatureBounds(0, 9),
    }
    assert (
        cad.caption
        == "2 available (VLM total 10); 2 allocated, so at least that; ⚠ over-committed by 4"
    )
    assert sim.caption == "9 available (VLM total 20)"
