"""The layout of a cluster's hosts: names, addresses and limits, checked before anything is made."""
from __future__ import annotations

import pytest

from ray_jobs.supervisors.netns_hosts import HostsError, Network


def test_the_gateway_takes_the_first_address_and_the_hosts_the_next():
    net = Network("churn", "10.213.0.0/24", 3)
    assert net.gateway == "10.213.0.1"
    assert [(h.name, h.ip) for h in net.hosts] == [("churn-0", "10.213.0.2"), ("churn-1", "10.213.0.3"),
                                                  ("churn-2", "10.213.0.4")]


def test_a_host_runs_a_command_inside_its_namespace():
    (host,) = Network("churn", "10.213.0.0/24", 1).hosts
    assert host.command(["ray", "start"]) == ["ip", "netns", "exec", "churn-0", "ray", "start"]


def test_a_prefix_too_long_for_interface_names_is_refused():
    with pytest.raises(HostsError, match="longer than 10"):
        Network("churn-cluster", "10.213.0.0/24", 3)


def test_a_subnet_too_small_for_the_hosts_is_refused():
    with pytest.raises(HostsError, match="too small"):
        Network("churn", "10.213.0.0/30", 3)
