"""Validation of a prediction's overrides: every value the model cannot take is refused, naming the feature."""
from __future__ import annotations

import json
import math

import pytest
from fastapi.exceptions import RequestValidationError

from features.feature_set import FeatureSet, FeatureSpec
from serve_app.schemas import OverrideSchema

SCHEMA = OverrideSchema(FeatureSet((
    FeatureSpec("monthly_price", "float", "price", "billing"),
    FeatureSpec("tickets_30d", "int", "tickets", "support", window_days=30),
    FeatureSpec("contract_type", "category", "contract", "crm", categories=("month_to_month", "one_year")),
)))


@pytest.mark.parametrize("name, value", [
    ("monthly_price", math.nan), ("monthly_price", math.inf), ("monthly_price", -math.inf),
    ("monthly_price", 1e39), ("tickets_30d", 10**39), ("tickets_30d", -(10**39)),
])
def test_a_value_float32_cannot_hold_is_refused_naming_the_feature(name, value):
    with pytest.raises(RequestValidationError) as refused:
        SCHEMA.encode({name: value})
    assert [e["loc"] for e in refused.value.errors()] == [("body", "overrides", name)]


def test_the_refusal_of_a_non_finite_value_can_be_written_as_json():
    with pytest.raises(RequestValidationError) as refused:
        SCHEMA.encode({"monthly_price": math.nan})
    json.dumps(refused.value.errors(), allow_nan=False)


def test_the_largest_float32_values_are_accepted():
    encoded = SCHEMA.encode({"monthly_price": 3.4e38, "tickets_30d": -(10**38)})
    assert encoded == {"monthly_price": 3.4e38, "tickets_30d": -1e38}


def test_a_category_is_encoded_as_its_index():
    assert SCHEMA.encode({"contract_type": "one_year"}) == {"contract_type": 1.0}
