"""One typed settings object for the whole platform.

Every field can be overridden by an environment variable: ``CHURN_<FIELD>`` for top-level
fields, ``CHURN_<SECTION>__<FIELD>`` for nested ones (``CHURN_SPARK__EXECUTOR_MEMORY=2g``).
``REDIS_URL`` and ``MLFLOW_TRACKING_URI`` are honoured as-is, without the prefix.
Defaults point at embedded local services under a project-local state folder (``.churn/``).
Path-like fields are URIs: local paths or ``s3://bucket/prefix``.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.object_store import s3_env


class RedisSettings(BaseModel):
    """The online store's Redis: the project's own (``churn services up``, with ``--ha`` a primary,
    replicas and Sentinels) or, through ``sentinels``, an external one with automatic failover."""

    host: str = "127.0.0.1"
    port: int = Field(6390, description="Never 6379, so a user's own Redis is never touched. With --ha "
                      "the primary's; the replicas take the next ports.")
    password: str | None = Field(None, description="Unset: the random one the first `churn services up` "
                                 "generated, kept in <state_dir>/redis/password (readable by its owner only).")
    db: int = 0
    sentinels: str | None = Field(None, description="host:port,host:port of the Sentinels of an external "
                                  "HA Redis (the embedded one's are found by themselves).")
    master_name: str = Field("churn", description="The name Sentinel monitors the primary under.")
    replicas: int = Field(2, description="Replicas of the embedded HA Redis.")
    sentinel_port: int = Field(26390, description="Port of the first embedded Sentinel; the others take the next ones.")
    sentinel_count: int = 3
    down_after_ms: int = Field(1000, description="Silence after which a Sentinel deems the primary down: "
                               "with the election, what a failover costs in unavailability.")
    failover_timeout_ms: int = Field(10_000, description="Sentinel's failover-timeout: how long before a "
                                     "stalled failover is tried again.")

    @field_validator("sentinels")
    @classmethod
    def _sentinels_are_host_port(cls, text: str | None) -> str | None:
        if text is not None:
            parse_sentinels(text)
        return text

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        return parse_sentinels(self.sentinels) if self.sentinels else ()


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``"h1:26379,h2:26379"`` -> ``(("h1", 26379), ("h2", 26379))``."""
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"CHURN_REDIS__SENTINELS: {item!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def _executor_memory() -> str:
    """45% of this machine's memory, in whole GiB (at least 2g): the ETL at a million customers
    needs several GiB per executor, and a small run does not use what it may."""
    total_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{max(2, int(total_gib * 0.45))}g"


class SparkSettings(BaseModel):
    """Spark on Ray (RayDP) sizing."""

    app_name: str = "churn-etl"
    num_executors: int = 1
    executor_cores: int = 2
    executor_ray_cpus: float = Field(
        1.0,
        description="Ray CPUs an executor reserves. Below executor_cores so that Ray Data tasks "
        "in the same job (the hand-off) still get a CPU on a small node.",
    )
    executor_memory: str = Field(default_factory=_executor_memory, description="JVM heap of each executor "
                                 "(default: 45% of this machine's memory; set it in a container).")
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(32, description="Partitions of every shuffle; adaptive execution merges "
                                    "the small ones of a small run.")
    s3a: bool = Field(False, description="Spark has Hadoop's s3a connector (the image's hadoop-aws jars) and "
                      "reads and writes s3:// itself; without it the ETL stages S3 data on the local disk.")


class GenerateSettings(BaseModel):
    """Defaults of the synthetic raw-data generator (demo scale)."""

    customers: int = 20_000
    days: int = 90
    seed: int = 7
    start_date: str = "2026-04-01"
    defect_rate: float = 0.01
    shard_size: int = 25_000


class EtlSettings(BaseModel):
    max_defect_rate: float | None = Field(
        None, description="Fail when a source has more invalid rows than this; unset: each source's contract limit."
    )


class CampaignSettings(BaseModel):
    """Economics of a retention contact, used to value models and campaigns."""

    value_feature: str = Field("monthly_price", description="Feature holding the monthly revenue of a customer.")
    value_months: int = Field(12, description="Months of revenue a saved customer is worth.")
    default_value: float = Field(600.0, description="Customer value when the value feature is absent.")
    success_rate: float = Field(0.3, description="Share of contacted would-be churners who stay.")
    contact_cost: float = Field(10.0, description="Cost of one retention contact.")
    top_fraction: float = Field(0.1, description="Share of customers contacted when valuing a model.")


def _booster_params() -> dict[str, float | int | str]:
    return {
        "eta": 0.05, "max_depth": 5, "min_child_weight": 5, "subsample": 0.8,
        "colsample_bytree": 0.8, "lambda": 1.0, "tree_method": "hist",
    }


class TrainSettings(BaseModel):
    """Distributed XGBoost on Ray Train."""

    num_workers: int = 2
    cpus_per_worker: float = Field(
        1.0, description="Ray CPUs per training worker; each runs xgboost with this many threads (rounded up)."
    )
    placement_strategy: Literal["SPREAD", "PACK"] = Field(
        "SPREAD", description="SPREAD: the workers on different nodes where there are several (one node "
        "loses fewer of them), on the one node otherwise.")
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    report_every: int = Field(25, description="Rounds between metric reports and checkpoints (each costs time).")
    max_failures: int = Field(2, description="Worker failures survived by resuming from the last checkpoint.")
    seed: int = 42
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.15
    cv_folds: int = 5
    params: dict[str, float | int | str] = Field(
        default_factory=_booster_params,
        description="XGBoost booster parameters. Training builds QuantileDMatrix, so tree_method stays hist "
        "(max_bin is honoured).",
    )


class TuneSettings(BaseModel):
    """Hyper-parameter search (Ray Tune + Optuna + ASHA)."""

    trials: int = 20
    distributed_trials: bool = Field(
        False, description="Each trial a Ray Train run with train.num_workers workers; else one worker per trial."
    )
    cpus_per_trial: float = 1.0
    grace_reports: int = Field(2, description="ASHA never stops a trial before this many reports.")
    seed: int = 42


class RegistrySettings(BaseModel):
    model_name: str = "churn-xgboost"
    uplift_model_name: str = Field("churn-uplift", description="The uplift model's own registered model.")
    experiment: str = "churn"
    min_auc_gain: float = Field(0.002, description="ROC-AUC a challenger must add over the champion.")
    min_value_gain: float = Field(0.0, description="Relative expected-campaign-value gain a challenger must add.")


class SegmentSettings(BaseModel):
    """Risk tiers marketing acts on: a customer is in the first tier whose lower bound it reaches."""

    tiers: dict[str, float] = Field(
        default_factory=lambda: {"critical": 0.6, "high": 0.35, "medium": 0.15, "low": 0.0},
        description="tier -> lower probability bound (or lower quantile with by_quantile).",
    )
    by_quantile: bool = Field(False, description="Bounds are quantiles of the scored population (batch only).")
    top_reasons: int = 3


class ScoringSettings(BaseModel):
    """Batch scoring on Ray Data: a pool of actors that each hold the model, fed large batches."""

    batch_size: int = Field(100_000, gt=0, description="Rows per model call.")
    actors: int | None = Field(None, gt=0, description="Scoring actors; default one per cluster CPU.")
    cpus_per_actor: float | None = Field(
        None, gt=0, description="Ray CPUs an actor reserves; default: the CPUs left after io_cpus, shared out."
    )
    io_cpus: float = Field(
        0.5, gt=0, description="Ray CPUs of each read or write task; the pool leaves room for one of each, so "
        "writes stream while reads go on (a pool that reserves every CPU starves them and the job hangs). At "
        "most a quarter of the cluster.",
    )
    threads_per_actor: int = Field(1, gt=0, description="XGBoost threads in each actor.")
    exact_reasons: bool = Field(
        False, description="Top reasons from exact TreeSHAP (far costlier than a prediction) instead of "
        "the per-path approximation (Saabas).",
    )


class Intervention(BaseModel):
    cost: float = Field(gt=0, description="Cost of one contact.")
    success_rate: float = Field(gt=0, le=1, description="Share of contacted would-be churners who stay.")
    eligible_if: str | None = Field(
        None, description="A 0/1 feature that must be 1 for a customer to get it (e.g. marketing consent)."
    )


class InterventionSettings(BaseModel):
    """Retention interventions a campaign chooses from: at most one per customer."""

    catalogue: dict[str, Intervention] = Field(
        default_factory=lambda: {
            "email": Intervention(cost=0.5, success_rate=0.04, eligible_if="email_opt_in"),
            "call": Intervention(cost=8.0, success_rate=0.12),
            "discount": Intervention(cost=40.0, success_rate=0.2),
            "account_manager": Intervention(cost=120.0, success_rate=0.3),
        }
    )
    budget: float = Field(50_000.0, gt=0, description="Default campaign budget.")
    outcome_days: int = Field(
        30, gt=0, description="Churn counted within this many days after the as-of date when a campaign is "
        "checked against generated truth (a labelled snapshot's own horizon wins).",
    )
    goal_churn_reduction: float = Field(0.15, description="Business goal: share of churn a campaign prevents.")
    control_share: float = Field(0.1, ge=0, lt=1, description="Share of a campaign's selected customers kept "
                                 "aside, at random, as its control group (not contacted).")
    objective: Literal["net_value", "churners_saved"] = Field(
        "net_value", description="What a campaign maximises within its budget: expected net value (a contact must "
        "pay for itself), or expected churners saved (the budget buys the largest drops in churn per cost).")


def _baseline_params() -> dict[str, float | int | str]:
    return {"eta": 0.05, "max_depth": 4, "min_child_weight": 5, "subsample": 0.8, "colsample_bytree": 0.8,
            "lambda": 1.0, "tree_method": "hist"}


def _arm_params() -> dict[str, float | int | str]:
    return {"eta": 0.05, "max_depth": 2, "min_child_weight": 10, "subsample": 0.8, "colsample_bytree": 0.8,
            "lambda": 30.0, "tree_method": "hist"}


class UpliftSettings(BaseModel):
    """The uplift model: what each intervention changes in a customer's churn, learnt from past campaigns.

    A baseline model learns churn without contact (control group and untargeted customers); each
    intervention's model starts from the baseline shifted by the catalogue's success rate and learns
    only the correction the contacts support (heavily regularised: with little history it stays at
    the catalogue's rate)."""

    baseline_params: dict[str, float | int | str] = Field(default_factory=_baseline_params)
    arm_params: dict[str, float | int | str] = Field(default_factory=_arm_params)
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    min_qini_gain: float = Field(0.0, description="Held-out Qini a challenger must add over the champion.")


class DriftSettings(BaseModel):
    """Drift between a reference and a current snapshot: thresholds for warn and critical."""

    bins: int = Field(10, ge=2, description="PSI bins: quantiles of the reference.")
    psi_warn: float = 0.1
    psi_critical: float = 0.25
    ks_warn: float = 0.1
    ks_critical: float = 0.2
    missing_warn: float = Field(0.05, description="Absolute change of a feature's missing rate.")
    missing_critical: float = 0.15
    label_warn: float = Field(0.2, description="Relative change of the label rate.")
    label_critical: float = 0.5
    max_rows: int = Field(500_000, gt=0, description="Rows read per snapshot (a seeded sample above this).")
    plots: int = Field(6, ge=0, description="Most drifted features plotted in the report.")
    context_level: Literal["ok", "warn", "critical"] = Field(
        "warn", description="Highest level of a per-region context feature: every customer of a region shares "
        "its value, so a handful of regions is the real sample and market noise moves a fifth of the mass at once.",
    )


class OnlineStoreSettings(BaseModel):
    """The online feature store (Redis): key layout, bulk loads, readers."""

    namespace: str = Field("churn:fv", description="Prefix of every key the online store writes.")
    write_batch_rows: int = Field(2_000, gt=0, description="Customers per MSET (all of a block's are pipelined).")
    writers: int | None = Field(
        None, gt=0, description="Ray Data blocks, each read and written by one task; default: the cluster's CPUs.")
    pointer_ttl_s: float = Field(
        1.0, gt=0, description="Readers re-read the live-version pointer at most this often (and on a miss).")
    socket_timeout_s: float = Field(0.5, gt=0, description="Reader timeout per Redis call (tried once more, then 503).")
    verify_sample: int = Field(1_000, ge=0, description="Random customers checked to exist before a flip.")


class ServeSettings(BaseModel):
    """The prediction service (Ray Serve app ``serve_app``) and ``churn serve``."""

    host: str = "127.0.0.1"
    port: int = Field(8000, description="The one stable HTTP route (HAProxy in front of the replicas).")
    api_key: str | None = Field(None, description="When set, every /v1 call needs it in the X-API-Key header.")
    model_alias: str = "champion"
    model_poll_s: float = Field(5.0, gt=0, description="How often replicas check where the alias points.")
    engine: Literal["onnx", "xgboost"] = Field(
        "onnx", description="onnx: the trees compiled for ONNX Runtime (same numbers, much faster per row).")
    max_batch_ids: int = Field(1_000, gt=0, description="Largest /v1/predict/batch request.")
    max_batch_size: int = Field(64, gt=0, description="Concurrent requests merged into one predict "
                                "(@serve.batch); 1: no batching.")
    batch_wait_timeout_s: float = Field(0.0, ge=0, description="Wait for more requests before a batch runs.")
    ray_cpus: int | None = Field(None, description="CPUs of the Ray head `churn serve` starts (all by default).")
    ready_timeout_s: float = Field(300.0, gt=0, description="How long `churn serve` waits for /readyz.")


class ClusterSettings(BaseModel):
    """``churn cluster up``: a Ray head and worker nodes as separate hosts (network namespaces)."""

    workers: int = Field(2, ge=1, description="Worker nodes beside the head.")
    head_cpus: int = Field(0, ge=0, description="The head schedules no work (its CPU is the drivers', "
                           "the dashboard's and Serve's controller's), as on a production cluster.")
    worker_cpus: int = Field(1, ge=1, description="Ray CPUs of each worker node.")
    object_store_mb: int = Field(1024, ge=100, description="Shared-memory object store of each node.")
    prefix: str = Field("churn", max_length=10, description="Name of the bridge and prefix of the hosts.")
    subnet: str = Field("10.213.0.0/24", description="The hosts' addresses: the bridge takes the first, "
                        "the head the second, the workers the next.")
    gcs_port: int = 6380
    dashboard_port: int = Field(8265, description="The Jobs API (`ray job submit --address`).")


class S3Settings(BaseModel):
    """The S3-compatible store behind ``s3://`` URIs: an external one (``endpoint_url``, or AWS's own
    variables and credential chain) or the project's own SeaweedFS (``churn services up --s3``)."""

    endpoint_url: str | None = Field(None, description="Unset: AWS_ENDPOINT_URL, else the embedded server's "
                                     "once `churn services up --s3` started it, else AWS itself.")
    region: str = "us-east-1"
    port: int = Field(8333, description="S3 port of the embedded server; its master, volume and filer take "
                      "the next nine ports, its admin's gRPC that port + 10008.")
    bucket: str = Field("churn", description="The bucket the embedded server creates.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHURN_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    state_dir: Path = Path(".churn")
    data_root: str | None = Field(
        None, description="Root URI of all datasets; defaults to <state_dir>/data."
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join ('auto' inside a Ray job); unset starts a local one."
    )
    ray_num_cpus: int | None = Field(None, description="CPUs of a local Ray cluster (all by default).")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "CHURN_REDIS_URL"),
        description="An external Redis; when set, `churn services` starts nothing.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURN_MLFLOW_TRACKING_URI"),
        description="Defaults to sqlite:///<state_dir>/mlflow.db.",
    )
    artifact_root: str | None = Field(
        None, description="MLflow artifacts of a new experiment (local store only); defaults to "
        "<state_dir>/mlartifacts, or <data_root>/mlartifacts when the data root is remote (s3://).")
    results_root: str | None = Field(
        None, description="Ray Train and Tune runs and checkpoints: storage every node reaches; defaults to "
        "<state_dir>/ray_results, or <data_root>/ray_results when the data root is remote.")
    redis: RedisSettings = RedisSettings()
    spark: SparkSettings = SparkSettings()
    generate: GenerateSettings = GenerateSettings()
    etl: EtlSettings = EtlSettings()
    campaign: CampaignSettings = CampaignSettings()
    train: TrainSettings = TrainSettings()
    tune: TuneSettings = TuneSettings()
    registry: RegistrySettings = RegistrySettings()
    segments: SegmentSettings = SegmentSettings()
    scoring: ScoringSettings = ScoringSettings()
    interventions: InterventionSettings = InterventionSettings()
    uplift: UpliftSettings = UpliftSettings()
    drift: DriftSettings = DriftSettings()
    online: OnlineStoreSettings = OnlineStoreSettings()
    serve: ServeSettings = ServeSettings()
    cluster: ClusterSettings = ClusterSettings()
    s3: S3Settings = S3Settings()

    @property
    def data_uri(self) -> str:
        return self.data_root or str((self.state_dir / "data").absolute())

    @property
    def owns_redis(self) -> bool:
        """True when the project runs its own Redis (no REDIS_URL or external Sentinels given)."""
        return not self.redis_url and not self.redis.sentinels

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.state_dir / 'mlflow.db').absolute()}"

    @property
    def remote_data(self) -> bool:
        return "://" in self.data_uri

    @property
    def artifact_uri(self) -> str:
        return self.artifact_root or self._beside_data("mlartifacts")

    @property
    def reports_uri(self) -> str:
        """Reports people open (drift): beside the data on a remote data root."""
        return self._beside_data("reports")

    @property
    def results_uri(self) -> str:
        return self.results_root or self._beside_data("ray_results")

    def _beside_data(self, name: str) -> str:
        """``<data_root>/<name>`` on a remote data root (every node reaches it), else ``<state_dir>/<name>``."""
        return f"{self.data_uri.rstrip('/')}/{name}" if self.remote_data else str((self.state_dir / name).absolute())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment. The object store's endpoint and
    keys go into this process's environment too: pyarrow, boto3 (MLflow) and Ray's workers read them there."""
    settings = Settings()
    for name, value in s3_env(settings).items():
        os.environ.setdefault(name, value)
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``CHURN_*`` variables that rebuild ``settings`` in another process (Ray workers)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json", exclude_none=True).items():
        if name == "redis_url":
            env["REDIS_URL"] = value
        elif name == "mlflow_tracking_uri":
            env["MLFLOW_TRACKING_URI"] = value
        elif isinstance(value, dict):
            for key, inner in value.items():
                if inner is not None:
                    env[f"CHURN_{name.upper()}__{key.upper()}"] = inner if isinstance(inner, str) else json.dumps(inner)
        else:
            env[f"CHURN_{name.upper()}"] = str(value)
    env["CHURN_STATE_DIR"] = str(Path(settings.state_dir).absolute())
    return {**env, **s3_env(settings)}
