"""One typed settings object for the whole platform.

Every field can be overridden by an environment variable: ``CHURN_<FIELD>`` for top-level
fields, ``CHURN_<SECTION>__<FIELD>`` for nested ones (``CHURN_SPARK__EXECUTOR_MEMORY=2g``).
``REDIS_URL`` and ``MLFLOW_TRACKING_URI`` are honoured as-is, without the prefix.
Defaults point at embedded local services under a project-local state folder (``.churn/``).
Path-like fields are URIs: local paths or ``s3://bucket/prefix``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RedisSettings(BaseModel):
    """The project-owned redis-server started by ``churn services up``."""

    host: str = "127.0.0.1"
    port: int = Field(6390, description="Never 6379, so a user's own Redis is never touched.")
    password: str = "churn-local-dev"
    db: int = 0


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
    executor_memory: str = "2g"
    driver_memory: str = "2g"
    shuffle_partitions: int = 8


class GenerateSettings(BaseModel):
    """Defaults of the synthetic raw-data generator (demo scale)."""

    customers: int = 20_000
    days: int = 90
    seed: int = 7
    start_date: str = "2026-04-01"
    defect_rate: float = 0.01
    shard_size: int = 25_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHURN_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    state_dir: Path = Path(".churn")
    data_root: Optional[str] = Field(
        None, description="Root URI of all datasets; defaults to <state_dir>/data."
    )
    ray_address: Optional[str] = Field(
        None, description="Ray cluster to join ('auto' inside a Ray job); unset starts a local one."
    )
    ray_num_cpus: Optional[int] = Field(None, description="CPUs of a local Ray cluster (all by default).")
    redis_url: Optional[str] = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "CHURN_REDIS_URL"),
        description="An external Redis; when set, `churn services` starts nothing.",
    )
    mlflow_tracking_uri: Optional[str] = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURN_MLFLOW_TRACKING_URI"),
        description="Defaults to sqlite:///<state_dir>/mlflow.db.",
    )
    redis: RedisSettings = RedisSettings()
    spark: SparkSettings = SparkSettings()
    generate: GenerateSettings = GenerateSettings()

    @property
    def data_uri(self) -> str:
        return self.data_root or str((self.state_dir / "data").absolute())

    @property
    def raw_uri(self) -> str:
        return f"{self.data_uri}/raw"

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        r = self.redis
        return f"redis://:{r.password}@{r.host}:{r.port}/{r.db}"

    @property
    def owns_redis(self) -> bool:
        """True when the project runs its own redis-server (no REDIS_URL given)."""
        return not self.redis_url

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.state_dir / 'mlflow.db').absolute()}"

    @property
    def artifact_uri(self) -> str:
        return str((self.state_dir / "mlartifacts").absolute())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
