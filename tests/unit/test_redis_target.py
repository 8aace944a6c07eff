"""Where each process finds the online store's Redis: settings first, then the files the embedded
services write under the state folder."""
from __future__ import annotations

import json

import pytest

from core.redis_target import redis_target
from core.settings import Settings, parse_sentinels

pytestmark = pytest.mark.usefixtures("clean_env")


def settings(tmp_path, **kwargs) -> Settings:
    return Settings(state_dir=tmp_path, redis_url=None, mlflow_tracking_uri=None, **kwargs)


def test_the_embedded_server_takes_the_generated_password(tmp_path):
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "password").write_text("generated\n")
    target = redis_target(settings(tmp_path, redis={"port": 7001}))
    assert target.url == "redis://:generated@127.0.0.1:7001/0" and target.sentinels == ()


def test_a_password_in_the_settings_wins_over_the_file(tmp_path):
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "password").write_text("generated")
    assert redis_target(settings(tmp_path, redis={"password": "set"})).password == "set"


def test_before_the_first_start_there_is_no_password(tmp_path):
    assert redis_target(settings(tmp_path)).url == "redis://127.0.0.1:6390/0"


def test_the_embedded_sentinels_are_found_while_they_run(tmp_path):
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "sentinels.json").write_text(json.dumps({"sentinels": [["127.0.0.1", 26390]]}))
    target = redis_target(settings(tmp_path))
    assert target.url is None and target.sentinels == (("127.0.0.1", 26390),) and target.master_name == "churn"


def test_external_sentinels_come_from_the_settings_and_own_nothing(tmp_path):
    s = settings(tmp_path, redis={"sentinels": "a:1, b:2", "password": "pw"})
    assert redis_target(s).sentinels == (("a", 1), ("b", 2)) and not s.owns_redis


def test_redis_url_is_used_as_it_is(tmp_path):
    s = Settings(state_dir=tmp_path, redis_url="redis://:pw@h:1/2", mlflow_tracking_uri=None)
    assert redis_target(s).url == "redis://:pw@h:1/2" and redis_target(s).described == "redis://h:1/2"


def test_the_description_of_sentinels_has_no_password(tmp_path):
    s = settings(tmp_path, redis={"sentinels": "a:1", "password": "pw"})
    assert redis_target(s).described == "sentinel://a:1/churn"


def test_settings_with_a_malformed_sentinel_are_refused(tmp_path):
    with pytest.raises(ValueError, match="is not host:port"):
        settings(tmp_path, redis={"sentinels": "redis-sentinel"})


@pytest.mark.parametrize("text", ["a", "a:b", ":1"])
def test_a_sentinel_that_is_not_host_port_is_refused_naming_it(text):
    with pytest.raises(ValueError, match=repr(text.strip())):
        parse_sentinels(text)


def test_ipv6_sentinels_lose_their_brackets():
    assert parse_sentinels("[::1]:26379") == (("::1", 26379),)
