"""Online-store benchmark: materialising a snapshot into Redis, and the encoding choice.

    python -m load_tests.bench_materialize [--customers 1000000]

1. Loads: ``--customers`` synthetic customers x the platform's 59 features from a parquet
   snapshot into a project redis-server (AOF on, RDB off), through Ray Data writers, three times
   in a row: the first load, a second (flip; the first becomes previous) and a third (flip, then
   the oldest version is deleted), then a rollback. A load's time runs until its version is live;
   the deletion after it is timed apart. Ray's start-up is not timed.
2. Encoding: the same ``--encoding-customers`` written as packed float32 vectors (what the store
   uses) and as hashes of one field per feature: memory per customer, write time, and read latency
   of one customer (GET vs HGETALL) and of 100 (MGET vs pipelined HGETALLs), decoding included.

Writes ``load_tests/results/materialize.json``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from core.processes import free_port
from core.ray_session import ray_session
from core.settings import Settings
from features.definitions import FEATURES
from features.online import materialize
from features.online.codec import decode_rows, mset_commands, pack_vectors, schema_tag
from features.online.redis_layout import redis_client
from features.online.redis_writer import RedisOnlineStore
from load_tests import common
from ray_jobs.supervisors.redis_server import RedisServer

RESULT = Path(__file__).resolve().parent / "results" / "materialize.json"
TARGET_S = 5.0


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def loads(settings: Settings, customers: int) -> dict:
    snapshot = common.write_snapshot(settings, customers)
    client = redis_client(settings)
    runs = []
    with ray_session(settings):
        for _ in range(3):
            before = used_memory(client)
            result = materialize.materialize(settings, snapshot.id)
            runs.append({"version": result.version.id, "previous": result.previous,
                         "seconds": round(result.seconds, 2), "rows_per_s": round(result.rows_per_s),
                         "removed": result.removed, "cleanup_seconds": round(result.cleanup_seconds, 2),
                         "used_memory_delta_mb": round((used_memory(client) - before) / 2**20, 1)})
            print(f"  load {result.version.id}: live in {result.seconds:.2f} s ({result.rows_per_s:,.0f} rows/s), "
                  f"then removed {result.removed or 'nothing'} in {result.cleanup_seconds:.2f} s", flush=True)
    started = time.perf_counter()
    live = materialize.rollback(settings)
    rollback_ms = (time.perf_counter() - started) * 1e3
    versions = RedisOnlineStore(settings).versions()
    return {"customers": customers, "features": len(FEATURES), "runs": runs,
            "rollback_ms": round(rollback_ms, 2), "live_after_rollback": live.id,
            "versions_kept": {v.id: v.state for v in versions},
            "used_memory_mb": round(used_memory(client) / 2**20, 1),
            "fastest_load_s": min(r["seconds"] for r in runs), "target_s": TARGET_S,
            "target_met": all(r["seconds"] <= TARGET_S for r in runs)}


def _latencies(fn, reps: int) -> dict:
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e3)
    p50, p99 = np.percentile(samples, [50, 99])
    return {"p50_ms": round(float(p50), 4), "p99_ms": round(float(p99), 4)}


def encodings(settings: Settings, customers: int, reps: int = 2000) -> dict:
    """Packed vectors against one hash per customer (a field per feature)."""
    client = redis_client(settings)
    client.flushdb()
    frame = common.customer_frame(customers, seed=1)
    ids = frame["customer_id"].tolist()
    values = frame[FEATURES.names].to_numpy(np.float32)
    tag = schema_tag(FEATURES.schema_hash)
    rng = np.random.default_rng(0)
    names = FEATURES.names

    def pick(n: int) -> list[str]:
        return [ids[i] for i in rng.integers(0, len(ids), n)]

    before = used_memory(client)
    started = time.perf_counter()
    commands = mset_commands([f"p:{i}".encode() for i in ids], pack_vectors(tag, values), 2000)
    conn = client.connection_pool.get_connection()
    conn.send_packed_command(commands)
    for _ in commands:
        conn.read_response()
    client.connection_pool.release(conn)
    packed_write = time.perf_counter() - started
    packed_bytes = (used_memory(client) - before) / customers

    before = used_memory(client)
    started = time.perf_counter()
    with client.pipeline(transaction=False) as pipe:
        for i, row in zip(ids, values.tolist()):
            pipe.hset(f"h:{i}", mapping={n: v for n, v in zip(names, row) if v == v})
            if len(pipe) >= 2000:
                pipe.execute()
        pipe.execute()
    hash_write = time.perf_counter() - started
    hash_bytes = (used_memory(client) - before) / customers

    def get_packed(n: int) -> None:
        decode_rows(client.mget([f"p:{i}" for i in pick(n)]), tag, len(names))

    def get_hash(n: int) -> None:
        with client.pipeline(transaction=False) as pipe:
            for i in pick(n):
                pipe.hgetall(f"h:{i}")
            rows = pipe.execute()
        np.array([[float(r.get(n.encode(), "nan")) for n in names] for r in rows], dtype=np.float32)

    result = {
        "customers": customers,
        "packed_float32": {"bytes_per_customer": round(packed_bytes), "write_s": round(packed_write, 2),
                           "read_1": _latencies(lambda: get_packed(1), reps),
                           "read_100": _latencies(lambda: get_packed(100), reps // 4)},
        "hash_per_feature": {"bytes_per_customer": round(hash_bytes), "write_s": round(hash_write, 2),
                             "read_1": _latencies(lambda: get_hash(1), reps),
                             "read_100": _latencies(lambda: get_hash(100), reps // 4)},
    }
    client.flushdb()
    return result


def main() -> None:
    parser = common.parser(__doc__, RESULT)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--encoding-customers", type=int, default=100_000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below when stopped
    scratch = Path(tempfile.mkdtemp(prefix="bench-materialize-", dir=args.out))
    settings = Settings(state_dir=scratch, redis_url=None, mlflow_tracking_uri=None,
                        redis={"port": free_port(), "password": "bench"})
    server = RedisServer(settings)
    server.up()
    report: dict = {"machine": common.machine(), "redis": {"aof": "everysec", "rdb": "off"}}
    try:
        report["loads"] = loads(settings, args.customers)
        report["encoding"] = encodings(settings, args.encoding_customers)
        report["machine"]["load_avg_1m_after"] = os.getloadavg()[0]
    finally:
        server.down()
        shutil.rmtree(scratch, ignore_errors=True)
    common.save(report, args.result)
    print(json.dumps({k: report[k] for k in ("loads", "encoding")}, indent=2))


if __name__ == "__main__":
    main()
