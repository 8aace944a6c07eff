"""The materialize step on Ray: a snapshot loaded into the real Redis online store as a new live
version, loaded again, rolled back; a load that cannot be complete leaves the live version.
The materialisations of the main scenario run once for the module."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from features.online import materialize
from features.online.interface import LoadIncomplete
from features.online.redis_writer import RedisOnlineStore

from _online import FEATURES, FRAME, IDS, load, online_settings, read_rows
from support import write_snapshot

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]


@pytest.fixture(scope="module")
def materialized(ray_cluster, redis_server, tmp_path_factory) -> SimpleNamespace:
    """The snapshot materialised as the first version, read back, materialised again, rolled back."""
    settings = online_settings(tmp_path_factory.mktemp("materialize"), redis_server.cfg.port,
                               online={"namespace": "materialize:fv", "pointer_ttl_s": 0.01})
    snapshot = write_snapshot(settings, FRAME, FEATURES)
    first = materialize.materialize(settings, "latest")
    rows = read_rows(settings, IDS)
    second = materialize.materialize(settings, snapshot.id)
    rolled_back = materialize.rollback(settings)
    return SimpleNamespace(snapshot=snapshot, first=first, rows=rows, second=second, rolled_back=rolled_back)


def test_materialize_publishes_every_row_as_the_first_live_version(materialized):
    first = materialized.first
    assert first.rows == len(FRAME) and first.previous is None and first.version.state == "live"


def test_a_materialized_version_records_the_schema_and_the_snapshot(materialized):
    first = materialized.first
    assert first.version.schema_hash == FEATURES.schema_hash and first.version.source == materialized.snapshot.id


def test_materialized_vectors_read_back_as_the_snapshot_values(materialized):
    rows = materialized.rows
    expected = FRAME[FEATURES.names].to_numpy("float32")
    assert rows.found.all()
    np.testing.assert_array_equal(rows.values, expected)


def test_materializing_again_makes_a_new_version_with_the_first_as_previous(materialized):
    first, second = materialized.first, materialized.second
    assert second.previous == first.version.id and second.version.id != first.version.id


def test_rollback_after_materializing_again_restores_the_first_version(materialized):
    assert materialized.rolled_back.id == materialized.first.version.id


def test_failed_materialize_leaves_the_live_version(osettings, ray_cluster):
    store = RedisOnlineStore(osettings)
    live = load(store, 1.0)
    write_snapshot(osettings, FRAME, FEATURES, snapshot_id="20260630-lies", rows=len(FRAME) + 1)
    with pytest.raises(LoadIncomplete, match="expected"):
        materialize.materialize(osettings, "latest")
    assert store.live().id == live
    assert [v.id for v in store.versions()] == [live]
