"""Spark on Ray through RayDP, sized from settings.

Spark 3.5 on Java 17 needs its internal packages opened to the unnamed module; RayDP's
Java actors serialise more JDK types (``java.math`` among them), so they need a few more.
The flags live here only, and go to the driver, the executors and RayDP's app master.
``spark_configs`` is shared with plain (non-Ray) sessions; RayDP adds its own keys.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
