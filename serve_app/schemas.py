"""Request and response bodies. The overridable features are not restated here: they come from
the loaded model's FeatureSet (``OverrideSchema``), names, types and category values included."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt, ValidationError, create_model

from features.feature_set import FeatureSet, FeatureSpec

MAX_BATCH_IDS = 1_000
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Features are float32 in the store and the model: a larger number cannot be represented."""
INT_LIMIT = int(FLOAT32_MAX)
CustomerId = Annotated[str, Field(min_length=1, max_length=128, examples=["C000042"])]
OverrideValue = float | bool | str | None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Fresh in-session values that replace stored features, by "
        "feature name (see the model's FeatureSet: numbers, booleans, category names; null = missing).",
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[CustomerId] = Field(min_length=1, max_length=MAX_BATCH_IDS)


class Reason(BaseModel):
    feature: str
    contribution: float = Field(description="Log-odds the feature adds to this customer's risk.")


class NextBestAction(BaseModel):
    intervention: str | None = Field(description="Retention intervention worth the most for this customer; "
                                     "null when none is worth its cost.")
    expected_churn_drop: float = Field(description="Drop in churn probability the intervention is expected to make.")
    expected_net_value: float = Field(description="Customer value x expected drop - cost (0 for none).")
    basis: str = Field(description="Where the expected drop comes from: the uplift model version, or the "
                       "catalogue's fixed success rates when none is registered.")


class Prediction(BaseModel):
    customer_id: str
    churn_probability: float
    risk_segment: str
    top_reasons: list[Reason]
    next_best_action: NextBestAction
    model_version: str
    feature_version: str
    latency_ms: float = 0.0


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    missing: list[str] = Field(description="Requested ids the online store does not know.")
    model_version: str
    feature_version: str
    latency_ms: float = 0.0


def _value_type(spec: FeatureSpec) -> Any:
    if spec.dtype == "category":
        return Literal[tuple(spec.categories or ())] | None
    if spec.dtype == "bool":
        return StrictBool | None
    if spec.dtype == "int":
        return Annotated[StrictInt, Field(ge=-INT_LIMIT, le=INT_LIMIT)] | None
    return Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)] | None


def _encode(spec: FeatureSpec, value: OverrideValue) -> float:
    """The float the model sees for a validated override value."""
    if value is None:
        return math.nan
    if spec.dtype == "category":
        return spec.encode_category(value)  # type: ignore[arg-type]
    return float(value)


def _json_safe(value: Any) -> Any:
    """NaN and the infinities as the text JSON has no number for (the error echoes the input)."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


class OverrideSchema:
    """Validation of ``overrides`` against one FeatureSet (strict types, known names only)."""

    def __init__(self, features: FeatureSet) -> None:
        self.features = features
        fields: dict[str, Any] = {spec.name: (_value_type(spec), Field(None, description=spec.description))
                                  for spec in features.features}
        self.model = create_model("Overrides", __config__=ConfigDict(extra="forbid"), **fields)

    def encode(self, overrides: dict[str, Any]) -> dict[str, float]:
        """Feature name -> model value; raises RequestValidationError naming the bad fields."""
        if not overrides:
            return {}
        try:
            self.model.model_validate(overrides)
        except ValidationError as exc:
            raise RequestValidationError([
                {**err, "loc": ("body", "overrides", *err["loc"]), "input": _json_safe(err.get("input")),
                 "msg": "unknown feature" if err["type"] == "extra_forbidden" else err["msg"]}
                for err in exc.errors(include_url=False)
            ]) from None
        return {name: _encode(self.features[name], value) for name, value in overrides.items()}

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()
