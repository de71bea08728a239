"""Settings: one typed object; every field also reads TABLESTREAM_<FIELD>."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from core.errors import ConfigError, TablestreamError
from tables.spec import TableSpec


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.web_host == "127.0.0.1"
    assert s.web_port == 6066
    assert s.dead_letter_topic == "tablestream-dlq"
    assert s.pipeline == ()


def test_env_contract() -> None:
    s = Settings.from_env(
        {
            "TABLESTREAM_BROKER": "kafka://k1:9092,k2:9093",
            "TABLESTREAM_PIPELINE": "a.sql, b/c.sql",
            "TABLESTREAM_DATA_DIR": "/var/lib/ts",
            "TABLESTREAM_WEB_HOST": "0.0.0.0",
            "TABLESTREAM_WEB_PORT": "7000",
            "TABLESTREAM_TABLES": "users:user-topic:id,limits,orders::id:partitioned",
            "TABLESTREAM_APP_ID": "shop",
            "UNRELATED": "x",
        }
    )
    assert s.bootstrap_servers == "k1:9092,k2:9093"
    assert s.faust_broker == "kafka://k1:9092;kafka://k2:9093"
    assert s.pipeline == (Path("a.sql"), Path("b/c.sql"))
    assert s.data_dir == Path("/var/lib/ts")
    assert (s.web_host, s.web_port) == ("0.0.0.0", 7000)
    assert s.tables == (
        TableSpec("users", "user-topic", "id"),
        TableSpec("limits", "limits"),
        TableSpec("orders", "orders", "id", partitioned=True),
    )
    assert s.dead_letter_topic == "shop-dlq"


def test_overrides_beat_env() -> None:
    assert Settings.from_env({"TABLESTREAM_WEB_PORT": "7000"}, web_port=7001).web_port == 7001


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"TABLESTREAM_WEB_PORT": "http"}, "TABLESTREAM_WEB_PORT='http'"),
        ({"TABLESTREAM_WEB_PORT": "70000"}, "web_port 70000"),
        ({"TABLESTREAM_TABLES": "a:b:c:d:e"}, "TABLESTREAM_TABLES"),
        ({"TABLESTREAM_TABLES": "9x"}, "not an identifier"),
        ({"TABLESTREAM_TABLES": "a,a"}, "defined twice: a"),
        ({"TABLESTREAM_TABLES": "a:t:id:sharded"}, "'sharded'"),
        (
            {"TABLESTREAM_PROCESSING_GUARANTEE": "exactly-once"},
            "processing_guarantee 'exactly-once' is not one of at_least_once, exactly_once",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert needle in str(err.value)
    assert isinstance(err.value, TablestreamError)


def test_processing_guarantee() -> None:
    assert not Settings().exactly_once
    env = {"TABLESTREAM_PROCESSING_GUARANTEE": "exactly_once"}
    assert Settings.from_env(env).exactly_once
