"""Separate hosts on one machine: Linux network namespaces joined by a bridge.

Each host is a namespace with a loopback of its own and one veth into a bridge in the root
namespace, whose address (the gateway) is how the hosts reach the machine's own services (the
project's Redis) and how this machine reaches them. Ports are per namespace, so every host can
use Ray's default ports; a process in one host cannot reach another's loopback, and losing a host
(``kill``) kills every process in it at once, as a crashed machine would. Needs root (CAP_NET_ADMIN).
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NETNS_ETC = Path("/etc/netns")
"""``ip netns exec`` mounts ``/etc/netns/<host>/*`` over ``/etc/*`` for the processes of that host."""


class HostsError(RuntimeError):
    """The namespaces could not be made or removed; the message says why."""


@dataclass(frozen=True)
class Host:
    """One namespace: its name and its address on the bridge."""

    name: str
    ip: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host."""
        return ["ip", "netns", "exec", self.name, *argv]


@dataclass(frozen=True)
class Network:
    """The bridge ``prefix`` and hosts ``<prefix>-0..n-1`` on ``subnet`` (gateway: its first address)."""

    prefix: str
    subnet: str
    count: int

    def __post_init__(self) -> None:
        if len(self.prefix) > 10:  # interface names are at most 15 characters: "<prefix>-v12"
            raise HostsError(f"network prefix {self.prefix!r} is longer than 10 characters")
        if self.count + 2 > ipaddress.ip_network(self.subnet).num_addresses:
            raise HostsError(f"subnet {self.subnet} is too small for {self.count} hosts")

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.subnet)[1])

    @property
    def hosts(self) -> list[Host]:
        net = ipaddress.ip_network(self.subnet)
        return [Host(f"{self.prefix}-{i}", str(net[i + 2])) for i in range(self.count)]

    def exists(self) -> bool:
        return _run(["ip", "link", "show", self.prefix], check=False).returncode == 0

    def create(self) -> list[Host]:
        """Make the bridge and the hosts (removing leftovers of an earlier run first)."""
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise HostsError("separate hosts need root and iproute2 (`ip`): run as root, or apt-get install iproute2")
        self.remove()
        prefix_len = ipaddress.ip_network(self.subnet).prefixlen
        _run(["ip", "link", "add", self.prefix, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.gateway}/{prefix_len}", "dev", self.prefix])
        _run(["ip", "link", "set", self.prefix, "up"])
        for i, host in enumerate(self.hosts):
            outside, inside = f"{self.prefix}-v{i}", f"{self.prefix}-p{i}"
            _run(["ip", "netns", "add", host.name])
            _run(["ip", "link", "add", outside, "type", "veth", "peer", "name", inside])
            _run(["ip", "link", "set", inside, "netns", host.name])
            _run(["ip", "link", "set", outside, "master", self.prefix, "up"])
            _run(["ip", "-n", host.name, "addr", "add", f"{host.ip}/{prefix_len}", "dev", inside])
            _run(["ip", "-n", host.name, "link", "set", inside, "up"])
            _run(["ip", "-n", host.name, "link", "set", "lo", "up"])
            _run(["ip", "-n", host.name, "route", "add", "default", "via", self.gateway])
            _write_etc(host)
        return self.hosts

    def kill(self, host: Host) -> list[int]:
        """SIGKILL every process inside ``host`` (a lost machine); the pids it killed."""
        found = _run(["ip", "netns", "pids", host.name], check=False)
        pids = [int(p) for p in found.stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def remove(self) -> None:
        """Kill what runs in the hosts, delete them, their veths and the bridge."""
        listed = _run(["ip", "netns", "list"], check=False).stdout.split()
        for i, host in enumerate(self.hosts):
            if host.name in listed:
                self._kill_and_wait(host)
                _run(["ip", "netns", "del", host.name])
            # a namespace outlives `del` while a dying process holds it, and its veth with it
            _run(["ip", "link", "del", f"{self.prefix}-v{i}"], check=False)
            shutil.rmtree(NETNS_ETC / host.name, ignore_errors=True)
        if self.exists():
            _run(["ip", "link", "del", self.prefix])

    def _kill_and_wait(self, host: Host, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.kill(host) and time.monotonic() < deadline:
            time.sleep(0.1)


def _write_etc(host: Host) -> None:
    """The host's own name resolution: this machine's hostname is the host's address (Spark and Ray
    bind to what it resolves to), and no name server (the machine's is out of the hosts' reach:
    a lookup fails at once instead of timing out)."""
    etc = NETNS_ETC / host.name
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{host.ip} {socket.gethostname()}\n")
    (etc / "resolv.conf").write_text("options timeout:1 attempts:1\n")


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise HostsError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done
