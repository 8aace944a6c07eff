"""The generator refuses what it cannot generate before it writes anything (no Ray)."""
from __future__ import annotations

import pytest

from simulator import SCENARIOS

from _generated import generate_raw


def test_unknown_drift_scenario_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid: " + ", ".join(sorted(SCENARIOS))):
        generate_raw(tmp_path, drift="meteor_strike", use_ray=False)
