"""The raw -> feature ETL on Spark through RayDP against the same transformations on plain
PySpark ``local[2]``, on the same raw data in the same run, and the Spark -> Ray Data hand-off.

    python -m load_tests.bench_etl --customers 1000000 --days 90

Generates the raw sources once into ``--scratch`` (a rerun with the same sizes reuses them; they
are removed after a successful run unless ``--keep``), then runs each engine in a fresh process
(its own Spark JVM and, for RayDP, its own local Ray cluster), alternating RayDP and local
``--repeats`` times. Both run the ETL's own Spark steps, from ``raw_etl`` and ``spark_features``,
with the same configuration (``spark_configs``: Java 17 flags, shuffle partitions...), except that
the local driver's heap is RayDP's driver and executor heaps together, since it runs the tasks
(with RayDP's 2g it fails at 300,000 customers): validate every source, build the features at the
as-of date (the last one a ``--horizon-days`` label allows), write the snapshot's data and
quarantine. Only that is timed; starting Ray and Spark is recorded apart (``start_s``).
``raw_etl.run`` then profiles the features in Ray Data, which plain Spark cannot feed: instead the
RayDP run times the hand-off itself,
``ray.data.from_spark`` of the persisted features in the snapshot's parts, materialized
(``handoff``). The two snapshots are compared row by row. Writes ``load_tests/results/etl.json``
(``ratio``: RayDP's seconds over local's, medians; the goal is at most 1.15). The load average is
recorded: other work skews it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import multiprocessing
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pyspark

from core import logs, storage
from core.ray_session import ray_session
from core.settings import Settings, SparkSettings, get_settings
from features import raw_etl, validation
from features.snapshot import Snapshot, laid_out, publish
from features.sources import SOURCES
from features.spark_features import build_features
from features.spark_session import raydp_spark, spark_configs, spark_path
from load_tests.common import machine
from simulator import generate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RESULT = Path(__file__).parent / "results" / "etl.json"
TARGET_RATIO = 1.15
LOCAL_CORES = 2
SNAPSHOT_ID = "bench-etl"


def bench_settings(state_dir: Path) -> Settings:
    return Settings(state_dir=state_dir, redis_url=None, mlflow_tracking_uri=None)


def raw_data(folder: Path, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The raw sources of ``args``' sizes under ``folder``: reused when a complete generation
    (its manifest is written last) with the same parameters is there, else generated in this
    process (no Ray start: under load the raylet can time out waiting for its agents)."""
    defaults = get_settings().generate
    sizes = {"customers": args.customers, "days": args.days, "seed": args.seed, "start_date": defaults.start_date,
                 "defect_rate": defaults.defect_rate}
    manifest = folder / "raw" / "_manifest.json"
    if manifest.exists() and all(json.loads(manifest.read_text())[k] == v for k, v in sizes.items()):
        print(f"reusing the raw data in {folder}", flush=True)
        return str(folder / "raw"), {"reused": True}
    print(f"generating {args.customers:,} customers x {args.days} days into {folder}", flush=True)
    result = generate(str(folder), **sizes, shard_size=defaults.shard_size, use_ray=False)
    return str(folder / "raw"), {"reused": False, "seconds": round(result.seconds, 1)}


def local_memory(spark: SparkSettings) -> str:
    """RayDP's driver and executor heaps together: local mode runs the tasks in the driver."""
    mb = sum(int(m[:-1]) * {"g": 1024, "m": 1}[m[-1].lower()]
             for m in (spark.driver_memory, *[spark.executor_memory] * spark.num_executors))
    return f"{mb}m"


@contextlib.contextmanager
def local_spark(settings: Settings) -> Iterator[SparkSession]:
    """Plain Spark in this process, ``local[2]``, with the configuration RayDP sessions get
    but the driver's heap as large as RayDP's heaps together."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(f"local[{LOCAL_CORES}]").appName(settings.spark.app_name)
    configs = {**spark_configs(settings), "spark.driver.memory": local_memory(settings.spark)}
    for key, value in configs.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def etl(spark: SparkSession, settings: Settings, raw_uri: str, as_of: dt.date,
        horizon: int) -> tuple[float, Snapshot, DataFrame]:
    """``raw_etl.run``'s Spark steps with its functions, published as a snapshot; returns the
    seconds, the snapshot and the features as written (persisted, in the snapshot's parts)."""
    held: dict[str, DataFrame] = {}

    def write(tmp: str) -> dict[str, Any]:
        tables, reports, quarantine = raw_etl._validate_sources(spark, raw_uri, SOURCES)
        limit = settings.etl.max_defect_rate
        validation.enforce_thresholds(reports, {s.name: s.max_defect_rate if limit is None else limit
                                                for s in SOURCES})
        features = build_features(tables, as_of, horizon).persist()
        rows = features.count()
        held["features"] = laid_out(features, rows)
        held["features"].write.parquet(spark_path(storage.join(tmp, "data")))
        quarantine.write.partitionBy("source").parquet(spark_path(storage.join(tmp, "quarantine")))
        return {"kind": "bench", "as_of": str(as_of), "horizon_days": horizon, "rows": rows,
                "sources": {r.source: asdict(r) for r in reports}}

    started = time.perf_counter()
    snapshot, _ = publish(settings, SNAPSHOT_ID, write)
    return time.perf_counter() - started, snapshot, held["features"]


def handoff(features: DataFrame) -> dict[str, Any]:
    """Spark -> Ray Data as ``raw_etl.run`` does it, until every block is in the object store."""
    import ray.data

    started = time.perf_counter()
    dataset = ray.data.from_spark(features).materialize()
    seconds = time.perf_counter() - started
    rows = dataset.count()
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "blocks": dataset.num_blocks()}


def on_local(raw_uri: str, state_dir: str, as_of: dt.date, horizon: int) -> dict[str, Any]:
    """One ETL on ``local[2]`` (meant for a fresh process: the Java options need a new JVM)."""
    settings = bench_settings(Path(state_dir))
    logs.configure(logs.new_run_id("bench-etl-local"))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with local_spark(settings) as spark:
        start_s = time.perf_counter() - started
        java = spark.sparkContext._jvm.java.lang.System.getProperty("java.version")
        seconds, snapshot, features = etl(spark, settings, raw_uri, as_of, horizon)
        features.unpersist()
    return {"engine": "local", "seconds": round(seconds, 1), "start_s": round(start_s, 1), "load_avg_1m": load,
            "snapshot": snapshot.uri, "java": java}


def on_raydp(raw_uri: str, state_dir: str, as_of: dt.date, horizon: int) -> dict[str, Any]:
    """One ETL on Spark through RayDP on a new local Ray cluster, then the hand-off of its
    features (meant for a fresh process: RayDP's state stays in the Ray session)."""
    settings = bench_settings(Path(state_dir))
    logs.configure(logs.new_run_id("bench-etl-raydp"))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with ray_session(settings), raydp_spark(settings) as spark:
        start_s = time.perf_counter() - started
        seconds, snapshot, features = etl(spark, settings, raw_uri, as_of, horizon)
        print(f"raydp: etl {seconds:.1f} s; handing the features to Ray Data", flush=True)
        moved = handoff(features)
        features.unpersist()
    return {"engine": "raydp", "seconds": round(seconds, 1), "start_s": round(start_s, 1), "load_avg_1m": load,
            "snapshot": snapshot.uri, "handoff": moved}


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_reraisable, fn, *args).result()


def _reraisable(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn(*args)``, its exception turned into one that pickles (Py4J's do not)."""
    try:
        return fn(*args)
    except Exception as e:
        raise RuntimeError(f"{type(e).__name__}: {str(e)[:2000]}") from None


def differences(a: Snapshot, b: Snapshot) -> dict[str, int]:
    """Rows that differ, per column (by customer id), and source reports that differ."""
    frames = [pq.read_table(s.data_uri).sort_by("customer_id").to_pandas() for s in (a, b)]
    reports = int(a.manifest["sources"] != b.manifest["sources"])
    if len(frames[0]) != len(frames[1]) or list(frames[0]) != list(frames[1]):
        return {"rows": abs(len(frames[0]) - len(frames[1])), "columns": int(list(frames[0]) != list(frames[1])),
                "source_reports": reports}
    x, y = (f.reset_index(drop=True) for f in frames)
    same = (x == y) | (x.isna() & y.isna())
    return {**{c: int(n) for c, n in (~same).sum().items() if n}, "source_reports": reports}


def run(scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    raw_uri, generation = raw_data(scratch / f"raw-{args.customers}x{args.days}-seed{args.seed}", args)
    as_of = raw_etl.data_window(raw_uri)[1] - dt.timedelta(days=args.horizon_days)
    runs_dir = scratch / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    engines = {"local": on_local, "raydp": on_raydp}
    load_before = os.getloadavg()[0]
    runs = []
    for i in range(args.repeats):
        for engine in ("raydp", "local") if i % 2 == 0 else ("local", "raydp"):
            print(f"repeat {i + 1}: {engine} ETL as of {as_of}", flush=True)
            result = in_fresh_process(engines[engine], raw_uri, str(runs_dir / f"{engine}-{i}"), as_of,
                                      args.horizon_days)
            print(f"repeat {i + 1}: {engine} {result['seconds']} s (start {result['start_s']} s)", flush=True)
            runs.append(result)
    load_after = os.getloadavg()[0]
    snapshots = [Snapshot(SNAPSHOT_ID, r.pop("snapshot")) for r in runs]
    diffs = [differences(snapshots[0], s) for s in snapshots[1:]]
    manifest = snapshots[0].manifest
    local = [r for r in runs if r["engine"] == "local"]
    on_ray = [r for r in runs if r["engine"] == "raydp"]
    local_s = statistics.median(r["seconds"] for r in local)
    raydp_s = statistics.median(r["seconds"] for r in on_ray)
    moved = sorted((r["handoff"] for r in on_ray), key=lambda h: h["seconds"])[len(on_ray) // 2]  # the median
    spark = get_settings().spark
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "customers": args.customers, "days": args.days, "seed": args.seed,
        "as_of": str(as_of), "horizon_days": args.horizon_days, "repeats": args.repeats,
        "rows_in": sum(s["rows_in"] for s in manifest["sources"].values()),
        "snapshot_rows": manifest["rows"],
        "generation": generation,
        "raydp": {"seconds": raydp_s, "start_s": statistics.median(r["start_s"] for r in on_ray),
                  "executors": spark.num_executors, "cores": spark.executor_cores,
                  "executor_memory": spark.executor_memory, "driver_memory": spark.driver_memory},
        "local": {"seconds": local_s, "start_s": statistics.median(r["start_s"] for r in local),
                  "master": f"local[{LOCAL_CORES}]", "driver_memory": local_memory(spark)},
        "shuffle_partitions": spark.shuffle_partitions,
        "ratio": round(raydp_s / local_s, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": raydp_s / local_s <= TARGET_RATIO,
        "handoff": moved,
        "ratio_with_handoff": round((raydp_s + moved["seconds"]) / local_s, 3),
        "identical_output": all(not any(d.values()) for d in diffs),
        "differences": diffs,
        "runs": runs,
        "machine": {**machine(), "java": local[0]["java"], "pyspark": pyspark.__version__,
                    "raydp": importlib.metadata.version("raydp"), "load_avg_1m_before": load_before,
                    "load_avg_1m_after": load_after},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=get_settings().generate.seed)
    parser.add_argument("--horizon-days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/bench-etl"),
                        help="Folder for the raw data and the snapshots [default: %(default)s].")
    parser.add_argument("--keep", action="store_true", help="Keep the raw data and the snapshots.")
    parser.add_argument("--result", type=Path, default=RESULT)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    report = run(args.scratch, args)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if not args.keep:
        for folder in (f"raw-{args.customers}x{args.days}-seed{args.seed}", "runs"):
            shutil.rmtree(args.scratch / folder, ignore_errors=True)


if __name__ == "__main__":
    main()
