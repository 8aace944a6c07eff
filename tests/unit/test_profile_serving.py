"""The serving profile's CPU accounting (pure functions, and this machine's real /proc)."""
from __future__ import annotations

import os

import pytest

from load_tests.profile_serving import cpu_seconds, per_request_us


def test_cpu_per_request_is_grouped_by_role_largest_first_and_new_processes_count_from_zero():
    before = {1: ("ray::ServeReplica:churn:Predictor", 10.0), 2: ("haproxy -f /tmp/haproxy.cfg", 1.0),
              5: ("ray::ServeReplica:churn:Predictor", 3.0)}
    after = {1: ("ray::ServeReplica:churn:Predictor", 10.5), 2: ("haproxy -f /tmp/haproxy.cfg", 1.1),
             5: ("ray::ServeReplica:churn:Predictor", 3.25), 3: ("[ksoftirqd/0]", 0.02),
             4: ("/usr/bin/python -m something", 0.01)}
    cpu = per_request_us(before, after, requests=1000)
    assert cpu == {"replica": 750.0, "haproxy": 100.0, "kernel softirq (loopback TCP)": 20.0, "other": 10.0}
    assert list(cpu) == ["replica", "haproxy", "kernel softirq (loopback TCP)", "other"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_cpu_seconds_reads_every_process_including_this_one():
    sum(i * i for i in range(200_000))  # some CPU of our own
    processes = cpu_seconds()
    name, seconds = processes[os.getpid()]
    assert "python" in name or "pytest" in name
    assert seconds > 0
