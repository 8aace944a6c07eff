"""The mobile app's traffic on the prediction API, for Locust.

    locust -f load_tests/locustfile.py --headless -u 200 -r 50 -t 2m --host http://127.0.0.1:8000 \\
        --csv load_tests/out/locust --html load_tests/out/locust.html

Each simulated app user opens a screen about once a second: mostly a plain prediction of a
random customer of the live online version, sometimes with in-session overrides (1-3 features of
the live FeatureSet with values of their type), sometimes a retention list (a batch of 20-100
customers). Customer ids are sampled from Redis at start (settings from CHURN_* as usual);
CHURN_SERVE__API_KEY is sent when set.
"""
from __future__ import annotations

import random

from locust import FastHttpUser, constant_throughput, events, task

from core.settings import get_settings
from features.feature_set import FeatureSet, FeatureSpec
from features.online.redis_writer import RedisOnlineStore

SAMPLE_IDS = 100_000
IDS: list[str] = []
FEATURE_SET: list[FeatureSet] = []


@events.test_start.add_listener
def load_customers(environment, **_) -> None:
    """Sample ids of the live version and its FeatureSet from the online store."""
    store = RedisOnlineStore(get_settings())
    live = store.live()
    if live is None:
        raise RuntimeError("no online features: run `churn materialize` first")
    prefix = store.keys.prefix(live.id)
    for key in store.client.scan_iter(match=prefix + b"*", count=10_000):
        IDS.append(key[len(prefix):].decode())
        if len(IDS) >= SAMPLE_IDS:
            break
    FEATURE_SET.append(live.features)


def override_value(spec: FeatureSpec) -> object:
    if spec.dtype == "category":
        return random.choice(spec.categories or (None,))
    if spec.dtype == "bool":
        return random.random() < 0.5
    if spec.dtype == "int":
        return random.randint(0, 10)
    return round(random.uniform(0, 100), 2)


class AppUser(FastHttpUser):
    wait_time = constant_throughput(1)

    def on_start(self) -> None:
        key = get_settings().serve.api_key
        self.headers = {"X-API-Key": key} if key else {}

    @task(16)
    def predict(self) -> None:
        self.client.post("/v1/predict", json={"customer_id": random.choice(IDS)}, headers=self.headers,
                         name="/v1/predict")

    @task(3)
    def predict_with_overrides(self) -> None:
        specs = random.sample(FEATURE_SET[0].features, random.randint(1, 3))
        body = {"customer_id": random.choice(IDS), "overrides": {s.name: override_value(s) for s in specs}}
        self.client.post("/v1/predict", json=body, headers=self.headers, name="/v1/predict [overrides]")

    @task(1)
    def retention_list(self) -> None:
        ids = random.sample(IDS, random.randint(20, 100))
        self.client.post("/v1/predict/batch", json={"customer_ids": ids}, headers=self.headers,
                         name="/v1/predict/batch")
