"""Settings: one typed object; every field also reads TABLESTREAM_<FIELD>."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from app.settings import Settings, env_warnings, known_variables
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
    ("env", "message"),
    [
        ({"TABLESTREAM_WEB_PORT": "http"}, "TABLESTREAM_WEB_PORT='http': expected an integer from"),
        ({"TABLESTREAM_WEB_PORT": "70000"}, "TABLESTREAM_WEB_PORT='70000': expected an integer"),
        ({"TABLESTREAM_TABLES": "a:b:c:d:e"}, "TABLESTREAM_TABLES='a:b:c:d:e': "),
        ({"TABLESTREAM_TABLES": "9x"}, "TABLESTREAM_TABLES='9x': table name '9x' is not an"),
        ({"TABLESTREAM_TABLES": "a,a"}, "TABLESTREAM_TABLES='a,a': table names defined twice: a"),
        ({"TABLESTREAM_TABLES": "a:t:id:sharded"}, "'sharded'"),
        ({"TABLESTREAM_BROKER": "k1:9092,k2"}, "TABLESTREAM_BROKER='k1:9092,k2': expected host:"),
        ({"TABLESTREAM_APP_ID": "my app"}, "TABLESTREAM_APP_ID='my app': expected a name"),
        ({"TABLESTREAM_LOG_LEVEL": "loud"}, "TABLESTREAM_LOG_LEVEL='loud': expected one of"),
        ({"TABLESTREAM_QUERY_LOG_INTERVAL": "-1"}, "expected a number >= 0.1"),
        ({"TABLESTREAM_QUERY_FETCH_WAIT_MS": "1.5"}, "expected an integer >= 0"),
        (
            {"TABLESTREAM_STATE_WRITE_INTERVAL": "-1"},
            "TABLESTREAM_STATE_WRITE_INTERVAL='-1': expected a number from 0 to 60",
        ),
        ({"TABLESTREAM_STATE_WRITE_INTERVAL": "nan"}, "'nan': expected a number from 0 to 60"),
        ({"TABLESTREAM_STATE_WRITE_INTERVAL": "soon"}, "'soon': expected a number from 0 to 60"),
        (
            {"TABLESTREAM_PROCESSING_GUARANTEE": "exactly-once"},
            "TABLESTREAM_PROCESSING_GUARANTEE='exactly-once': expected one of at_least_once",
        ),
    ],
)
def test_bad_values_name_the_variable_value_and_expectation(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, TablestreamError)


def test_values_given_in_code_are_checked_alike() -> None:
    with pytest.raises(ConfigError, match=r"web_port=0: expected an integer from 1 to 65535"):
        Settings(web_port=0)
    with pytest.raises(ConfigError, match="default_partitions=0: expected an integer >= 1"):
        Settings.from_env({}, default_partitions=0)


def test_every_setting_has_a_variable_and_is_read_by_its_type() -> None:
    env = {
        "TABLESTREAM_SESSION_TIMEOUT": "2.5",
        "TABLESTREAM_QUERY_MAX_INFLIGHT": "8",
        "TABLESTREAM_LOG_LEVEL": "DEBUG",
    }
    s = Settings.from_env(env)
    assert (s.session_timeout, s.query_max_inflight, s.log_level) == (2.5, 8, "DEBUG")
    assert "TABLESTREAM_EXTRA" not in known_variables()
    assert len(known_variables()) == len(dataclasses.fields(Settings)) - 2  # extra, secrets
    assert s.secrets["TABLESTREAM_LOG_LEVEL"] == "DEBUG"  # the environment, for password_env


#: A row of the README's settings table: variable, default, meaning.
_README_ROW = re.compile(r"^\| `(TABLESTREAM_[A-Z_]+)` \| ([^|]+) \| (.+) \|$", re.M)


def _readme_settings() -> list[tuple[str, str, str]]:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    return [(v, d.strip(), m.strip()) for v, d, m in _README_ROW.findall(readme)]


def test_the_readme_lists_every_variable() -> None:
    listed = [variable for variable, _, _ in _readme_settings()]
    assert sorted(listed) == sorted(known_variables())


_ROWS = _readme_settings()


@pytest.mark.parametrize(("variable", "default", "meaning"), _ROWS, ids=[r[0] for r in _ROWS])
def test_the_readme_gives_each_variables_default(variable: str, default: str, meaning: str) -> None:
    """The default the README shows, read as that variable, is the setting's default ("(none)":
    an empty one; ``<app id>`` stands for the app id)."""
    assert meaning
    defaults = Settings.from_env({})
    if default == "(none)":
        value = getattr(defaults, variable.removeprefix("TABLESTREAM_").lower())
        assert not value, (variable, value)
        return
    text = re.fullmatch(r"`([^`]*)`", default)
    assert text is not None, (variable, default)
    documented = Settings.from_env({variable: text[1].replace("<app id>", defaults.app_id)})
    if "<app id>" in default:  # the dead-letter topic: derived from the app id when not set
        assert documented.dead_letter_topic == defaults.dead_letter_topic
    else:
        assert documented == defaults, variable


def test_warnings_name_typos_and_faust_variables() -> None:
    lines = env_warnings(
        {
            "TABLESTREAM_WEB_PROT": "1",
            "TABLESTREAM_ZZZZZZZZ": "1",
            "BROKER_URL": "kafka://elsewhere:9092",
            "TABLESTREAM_BROKER": "here:9092",
            "PATH": "/bin",
        }
    )
    assert lines[1] == (
        "TABLESTREAM_WEB_PROT is not a tablestream setting (ignored); "
        "did you mean TABLESTREAM_WEB_PORT?"
    )
    assert lines[2].startswith("TABLESTREAM_ZZZZZZZZ is not a tablestream setting (ignored); ")
    assert "settings: TABLESTREAM_APP_ID, TABLESTREAM_BROKER" in lines[2]
    assert lines[0] == (
        "BROKER_URL='kafka://elsewhere:9092' is faust's variable and is not read; "
        "tablestream reads TABLESTREAM_BROKER"
    )
    assert len(lines) == 3
    assert env_warnings({"TABLESTREAM_BROKER": "here:9092"}) == []


def test_processing_guarantee() -> None:
    assert not Settings().exactly_once
    env = {"TABLESTREAM_PROCESSING_GUARANTEE": "exactly_once"}
    assert Settings.from_env(env).exactly_once


def test_commit_interval() -> None:
    assert Settings().commit_interval_ms == 100  # Kafka Streams' commit.interval.ms under EOS
    assert Settings.from_env({"TABLESTREAM_COMMIT_INTERVAL_MS": "0"}).commit_interval_ms == 0
    with pytest.raises(ConfigError, match="TABLESTREAM_COMMIT_INTERVAL_MS"):
        Settings.from_env({"TABLESTREAM_COMMIT_INTERVAL_MS": "-1"})
