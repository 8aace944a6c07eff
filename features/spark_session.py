"""Spark on Ray through RayDP, sized from settings.

Spark 3.5 on Java 17 needs its internal packages opened to the unnamed module; RayDP's
Java actors serialise more JDK types (``java.math`` among them), so they need a few more.
The flags live here only, and go to the driver, the executors and RayDP's app master.
``spark_configs`` is shared with plain (non-Ray) sessions; RayDP adds its own keys.

Spark reaches S3 through Hadoop's s3a connector, whose jars (hadoop-aws) no package registry
here carries: the image adds them and sets ``spark.s3a``; without them Spark reads a local copy
of its input and writes a local folder that is uploaded (``spark_readable``, ``spark_writable``),
which needs the driver and the executors on one disk (one machine, or a shared volume).
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core import storage
from core.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_OPENED_PACKAGES = (
    "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio",
    "java.math", "java.text", "java.time", "java.util", "java.util.concurrent",
    "java.util.concurrent.atomic", "java.util.regex", "java.util.function", "jdk.internal.ref",
    "sun.nio.ch", "sun.nio.cs", "sun.security.action", "sun.util.calendar",
)
JAVA17_FLAGS = " ".join(
    ["-XX:+IgnoreUnrecognizedVMOptions"]
    + [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in _OPENED_PACKAGES]
)


def spark_configs(settings: Settings) -> dict[str, str]:
    """Spark configuration of every session, on Ray or local (Java 17 flags included)."""
    return {
        "spark.driver.extraJavaOptions": JAVA17_FLAGS,
        "spark.executor.extraJavaOptions": JAVA17_FLAGS,
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        **(_s3a_configs() if settings.spark.s3a else {}),
    }


def _s3a_configs() -> dict[str, str]:
    """Hadoop's s3a on the endpoint and keys the environment names (``core.object_store.s3_env``)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return {
        "spark.hadoop.fs.s3a.aws.credentials.provider": "com.amazonaws.auth.EnvironmentVariableCredentialsProvider",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        **({"spark.hadoop.fs.s3a.endpoint": endpoint} if endpoint else {}),
    }


@contextlib.contextmanager
def raydp_spark(settings: Settings) -> Iterator[SparkSession]:
    """A Spark session whose executors are Ray actors; stopped on exit. Ray must be up."""
    import raydp

    s = settings.spark
    spark = raydp.init_spark(
        app_name=s.app_name,
        num_executors=s.num_executors,
        executor_cores=s.executor_cores,
        executor_memory=s.executor_memory,
        configs={
            **spark_configs(settings),
            "spark.ray.raydp_app_master.extraJavaOptions": JAVA17_FLAGS,
            "spark.ray.raydp_spark_executor.actor.resource.cpu": str(s.executor_ray_cpus),
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    log.info("spark on ray started", extra={"executors": s.num_executors, "cores": s.executor_cores})
    try:
        yield spark
    finally:
        raydp.stop_spark()


def spark_path(uri: str) -> str:
    """Spark's name for a URI: s3:// is read through Hadoop's s3a connector."""
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def _direct(uri: str, settings: Settings) -> bool:
    return "://" not in uri or (uri.startswith("s3://") and settings.spark.s3a)


@contextlib.contextmanager
def spark_readable(uri: str, settings: Settings) -> Iterator[str]:
    """Where Spark reads ``uri`` from, for as long as its (lazy) DataFrames are used: the URI itself
    locally or through s3a, else a local copy (Spark without the hadoop-aws jars)."""
    if _direct(uri, settings):
        yield spark_path(uri)
        return
    with storage.local_copy(uri) as local:
        log.info("spark reads a local copy", extra={"uri": uri, "bytes": storage.total_bytes(local)})
        yield local


@contextlib.contextmanager
def spark_writable(uri: str, settings: Settings) -> Iterator[str]:
    """Where Spark writes what ends up under ``uri``: the URI itself locally or through s3a, else a
    local folder uploaded when the block succeeds."""
    if _direct(uri, settings):
        yield spark_path(uri)
        return
    with storage.local_output(uri) as local:
        yield local
