"""``churn services`` (up, status, down) against a real redis-server: the commands run once in
order for the module, each test checks one answer."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from core.processes import free_port
from core.settings import get_settings
from ray_jobs import services
from ray_jobs.supervisors.redis_server import RedisServer

from support import SERVICES_PASSWORD as PASSWORD
from support import remove_churn_env

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """CHURN_* env for the CLI (nothing of the caller's shell); ``get_settings()`` is lru_cached,
    so it is cleared before and after. Runs up, up, status, down, status, down."""
    with pytest.MonkeyPatch.context() as env:
        remove_churn_env(env)
        env.setenv("CHURN_STATE_DIR", str(tmp_path_factory.mktemp("cli") / "cli-state"))
        env.setenv("CHURN_REDIS__PORT", str(free_port()))
        env.setenv("CHURN_REDIS__PASSWORD", PASSWORD)
        get_settings.cache_clear()
        settings = get_settings()
        runner = CliRunner()
        try:
            steps = SimpleNamespace(port=settings.redis.port)
            for name, args in [("up", ["up"]), ("up_again", ["up"]), ("status", ["status"]), ("down", ["down"]),
                               ("status_after_down", ["status"]), ("down_again", ["down"])]:
                setattr(steps, name, runner.invoke(services.app, args))
            yield steps
        finally:
            RedisServer(settings).down()
            get_settings.cache_clear()


def test_cli_up_starts_redis_on_its_port_without_printing_the_password(cli) -> None:
    result = cli.up
    assert result.exit_code == 0, result.output
    assert "started" in result.output and str(cli.port) in result.output
    assert PASSWORD not in result.output


def test_cli_up_again_says_already_running(cli) -> None:
    result = cli.up_again
    assert result.exit_code == 0 and "already running" in result.output


def test_cli_status_reports_healthy_with_aof(cli) -> None:
    result = cli.status
    assert result.exit_code == 0 and "healthy" in result.output and "aof=on" in result.output


def test_cli_down_stops_redis(cli) -> None:
    result = cli.down
    assert result.exit_code == 0 and "stopped" in result.output


def test_cli_status_after_down_exits_1_not_running(cli) -> None:
    result = cli.status_after_down
    assert result.exit_code == 1 and "not running" in result.output


def test_cli_down_again_has_nothing_to_stop(cli) -> None:
    result = cli.down_again
    assert result.exit_code == 0 and "nothing to stop" in result.output
