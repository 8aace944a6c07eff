"""A multi-node Ray cluster on this machine: a head and worker nodes, each a host of its own.

The hosts are network namespaces (``netns_hosts``): every node has its own address, its own
ports and its own processes, talks to the others only over the bridge, and is lost all at once by
``kill_node``. The head runs no work (``head_cpus`` 0): the dashboard with the Jobs API, the
drivers of submitted jobs, Serve's controller. Every node starts with the platform's settings in
its environment (absolute state directory, the Redis on the bridge's gateway), so a job submitted
from a copy of the working directory finds the same data, MLflow store and online store as the
machine's own commands; Ray's token authentication is on, the token in a file only its owner reads.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from core.settings import Settings, settings_env
from ray_jobs.supervisors.netns_hosts import Host, Network
from ray_jobs.supervisors.ray_head import SERVE_FLAGS
from ray_jobs.supervisors.redis_process import write_atomic
from ray_jobs.supervisors.redis_server import RedisServer
from serve_app.haproxy_wrapper import write_wrapper

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the message says why."""


@dataclass
class ClusterState:
    """Where the running cluster is (``<state_dir>/cluster/cluster.json``)."""

    gcs_address: str
    dashboard: str
    token_path: str
    nodes: list[str]  # host names, the head first
    ips: list[str]

    @property
    def client_env(self) -> dict[str, str]:
        """What ``ray job submit`` (or ``JobSubmissionClient``) needs to reach the cluster."""
        return {"RAY_ADDRESS": self.dashboard, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": self.token_path}

    def get(self, path: str, params: dict[str, str] | None = None, timeout_s: float = 30) -> dict:
        """A GET on the head's dashboard (Jobs and state APIs) with the cluster's token."""
        token = Path(self.token_path).read_text()
        reply = httpx.get(f"{self.dashboard}{path}", params=params, headers={"Authorization": f"Bearer {token}"},
                          timeout=timeout_s)
        reply.raise_for_status()
        return dict(reply.json())


class LocalCluster:
    """``churn cluster up/down/status``: the head and ``cluster.workers`` worker nodes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.cluster
        self.dir = (Path(settings.state_dir) / "cluster").absolute()
        self.state_file = self.dir / "cluster.json"
        self.token_file = self.dir / "auth_token"
        self.haproxy = self.dir / "haproxy"
        self.network = Network(self.cfg.prefix, self.cfg.subnet, self.cfg.workers + 1)

    @property
    def head(self) -> Host:
        return self.network.hosts[0]

    @property
    def workers(self) -> list[Host]:
        return self.network.hosts[1:]

    def state(self) -> ClusterState | None:
        """The running cluster, or None (no state file, or no network any more)."""
        try:
            state = ClusterState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return state if self.network.exists() else None

    def up(self) -> ClusterState:
        """Start the hosts, the head and the workers (idempotent); wait until every node is alive."""
        running = self.state()
        if running:
            return running
        self.dir.mkdir(parents=True, exist_ok=True)
        self.network.create()
        try:
            RedisServer(self.settings).also_listen(self.network.gateway)
            self.token_file.touch(mode=0o600)
            self.token_file.write_text(secrets.token_hex(32))
            write_wrapper(self.haproxy)
            state = ClusterState(
                gcs_address=f"{self.head.ip}:{self.cfg.gcs_port}",
                dashboard=f"http://{self.head.ip}:{self.cfg.dashboard_port}",
                token_path=str(self.token_file), nodes=[h.name for h in self.network.hosts],
                ips=[h.ip for h in self.network.hosts])
            self._start_node(self.head, state, head=True)
            for host in self.workers:
                self._start_node(host, state, head=False)
            self._wait_alive(state, len(self.network.hosts))
        except Exception:
            self.network.remove()
            raise
        write_atomic(self.state_file, json.dumps(asdict(state)))
        return state

    def down(self) -> bool:
        """Kill every node and remove the hosts; False when no cluster ran."""
        existed = self.network.exists()
        self.network.remove()
        for host in self.network.hosts:
            shutil.rmtree(self._temp_dir(host), ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        return existed

    def kill_node(self, name: str) -> list[int]:
        """Lose a worker node at once (SIGKILL to each of its processes), as a crashed machine."""
        return self.network.kill(self._worker(name))

    def restart_node(self, name: str) -> None:
        """Start a lost worker node again (a replacement machine with the same address)."""
        host, state = self._worker(name), self.state()
        if state is None:
            raise ClusterError("no cluster running")
        self._start_node(host, state, head=False)

    @staticmethod
    def alive_nodes(state: ClusterState) -> list[dict]:
        """The nodes the head knows alive (the state API of its dashboard)."""
        found = state.get("/api/v0/nodes", {"filter_keys": "state", "filter_predicates": "=",
                                            "filter_values": "ALIVE", "detail": "1"}, timeout_s=10)
        return list(found["data"]["result"]["result"])

    def job_env(self, state: ClusterState) -> dict[str, str]:
        """The environment every node (and so every job driver and worker) starts with."""
        env = settings_env(self.settings)
        if self.settings.owns_redis:
            env["CHURN_REDIS__HOST"] = self.network.gateway
        return {**env, **SERVE_FLAGS, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state.token_path}

    # ---------------------------------------------------------------- helpers
    def _worker(self, name: str) -> Host:
        host = next((h for h in self.workers if h.name == name), None)
        if host is None:
            raise ClusterError(f"{name!r} is not a worker node of this cluster ({[h.name for h in self.workers]})")
        return host

    @staticmethod
    def _temp_dir(host: Host) -> Path:
        """The node's Ray folder: short, for Ray's socket paths (< 108 characters)."""
        return Path(tempfile.gettempdir()) / f"ray-{host.name}"

    def _start_node(self, host: Host, state: ClusterState, head: bool) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        cmd = [ray, "start", f"--node-ip-address={host.ip}", f"--temp-dir={self._temp_dir(host)}",
               "--disable-usage-stats", f"--object-store-memory={self.cfg.object_store_mb * 2**20}"]
        if head:
            cmd += ["--head", f"--port={self.cfg.gcs_port}", f"--num-cpus={self.cfg.head_cpus}",
                    "--include-dashboard=true", f"--dashboard-host={host.ip}",
                    f"--dashboard-port={self.cfg.dashboard_port}"]
        else:
            cmd += [f"--address={state.gcs_address}", f"--num-cpus={self.cfg.worker_cpus}"]
        env = {**os.environ, **self.job_env(state), "RAY_SERVE_HAPROXY_BINARY_PATH": str(self.haproxy),
               # a job's `python` is this interpreter, with the project's locked packages
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        log_path = self.dir / f"{host.name}.log"
        with log_path.open("w") as out:  # a file, not a pipe: the daemons `ray start` leaves would hold a pipe open
            done = subprocess.run(host.command(cmd), env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=START_TIMEOUT_S).returncode
        if done != 0:
            raise ClusterError(f"`ray start` on {host.name} failed (exit {done}); last lines of {log_path}:\n"
                               + "\n".join(log_path.read_text(errors="replace").splitlines()[-20:]))

    def _wait_alive(self, state: ClusterState, count: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        error = ""
        while time.monotonic() < deadline:
            try:
                if len(self.alive_nodes(state)) >= count:
                    return
            except (httpx.HTTPError, KeyError) as exc:
                error = str(exc)
            time.sleep(1.0)
        raise ClusterError(f"the cluster did not show {count} alive nodes within {START_TIMEOUT_S:.0f} s {error}")
