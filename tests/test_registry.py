"""MLflow registry round trip on the embedded SQLite store."""
from __future__ import annotations

import numpy as np
import pytest

from ml import registry


def test_registered_champion_loads_with_its_feature_schema(settings, tiny_snapshot, champion):
    loaded = registry.load(settings, "champion")
    assert loaded.version == str(champion.version)
    assert loaded.schema_hash == tiny_snapshot.feature_set.schema_hash
    assert loaded.tags["snapshot_id"] == tiny_snapshot.id
    X = tiny_snapshot.to_pandas()[loaded.features.names].to_numpy("float32")
    proba = loaded.booster.inplace_predict(X)
    assert proba.shape == (len(X),) and np.all((proba > 0) & (proba < 1))


def test_missing_alias_is_a_clear_error(settings):
    with pytest.raises(registry.ModelNotFound, match="churn train"):
        registry.load(settings, "champion")
