"""The online store's vector encoding (no Redis): round trip with missing rows, and the layout
checks that refuse vectors of another schema or width."""
from __future__ import annotations

import numpy as np
import pytest

from features.feature_set import SchemaMismatch
from features.online.codec import decode_rows, encode_rows, schema_tag

from support import synthetic_customers

_, FEATURES = synthetic_customers(10)
TAG = schema_tag(FEATURES.schema_hash)
VALUES = np.array([[1.5, np.nan, -3.0, 2.0], [0.0, 7.0, np.inf, 1e-8]], dtype=np.float32)


def test_a_vector_is_the_schema_tag_and_one_float32_per_feature():
    raw = encode_rows(TAG, VALUES)
    assert all(len(v) == 4 + 4 * 4 for v in raw)


def test_encoding_round_trips_and_marks_missing_rows():
    raw = encode_rows(TAG, VALUES)
    decoded, found = decode_rows([raw[0], None, raw[1]], TAG, 4)
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(decoded[[0, 2]], VALUES)
    assert np.isnan(decoded[1]).all()


def test_vectors_of_another_schema_tag_are_refused():
    raw = encode_rows(TAG, VALUES)
    with pytest.raises(SchemaMismatch, match="schema tag"):
        decode_rows(raw, TAG ^ 1, 4)


def test_vectors_of_another_width_are_refused():
    raw = encode_rows(TAG, VALUES)
    with pytest.raises(SchemaMismatch, match="3 float32"):
        decode_rows(raw, TAG, 3)
