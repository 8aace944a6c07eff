"""The HAProxy wrapper: Ray's config gains the buffering option, everything else passes through."""
from __future__ import annotations

import subprocess
from pathlib import Path

from serve_app.haproxy_wrapper import OPTION, write_wrapper

RAY_CONFIG = "global\n    maxconn 10\ndefaults\n    mode http\nfrontend f\n    bind 127.0.0.1:1\n"


def fake_haproxy(tmp_path: Path) -> Path:
    """An executable that prints its arguments and the config file it was given."""
    real = tmp_path / "real-haproxy"
    real.write_text('#!/bin/sh\necho "$@"\nwhile [ $# -gt 0 ]; do [ "$1" = -f ] && cat "$2"; shift; done\n')
    real.chmod(0o755)
    return real


def run(wrapper: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(wrapper), *args], capture_output=True, text=True, check=True)


def test_the_config_after_f_gains_the_option_in_its_defaults_section(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_CONFIG)
    wrapper = write_wrapper(tmp_path / "bin" / "haproxy", real=str(fake_haproxy(tmp_path)))
    out = run(wrapper, "-db", "-f", str(config), "-sf", "123").stdout
    buffered = tmp_path / "haproxy.buffered.cfg"
    assert out.splitlines()[0] == f"-db -f {buffered} -sf 123"
    assert f"defaults\n    {OPTION}\n    mode http\n" in buffered.read_text()
    assert config.read_text() == RAY_CONFIG


def test_a_config_without_defaults_runs_unchanged_with_a_warning(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text("global\n    maxconn 10\n")
    wrapper = write_wrapper(tmp_path / "haproxy", real=str(fake_haproxy(tmp_path)))
    done = run(wrapper, "-c", "-f", str(config))
    assert done.stdout.splitlines()[0] == f"-c -f {config}"
    assert "no defaults section" in done.stderr


def test_the_wrapper_runs_the_real_haproxy_from_a_path_with_spaces(tmp_path):
    where = tmp_path / "a dir"
    where.mkdir()
    wrapper = write_wrapper(tmp_path / "haproxy", real=str(fake_haproxy(where)))
    assert run(wrapper, "-v").stdout.strip() == "-v"
