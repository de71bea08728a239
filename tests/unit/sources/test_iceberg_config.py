"""The options of an Iceberg table: catalog properties passed through, the catalog type from
the URI, each bad value named with its option."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from sources.iceberg_config import parse
from tables.spec import TableSpec

COLUMNS = (("symbol", "STRING"), ("volume", "BIGINT"))


def spec(**options: str) -> TableSpec:
    base = {"catalog_uri": "sqlite:///data/c.db", "table": "analytics.stats"}
    base.update(options)
    return TableSpec(
        "stats", "", "symbol", kind="iceberg", options=tuple(base.items()), columns=COLUMNS
    )


def test_defaults_and_catalog_properties() -> None:
    c = parse(spec(warehouse="file:///wh", **{"catalog.s3.endpoint": "http://127.0.0.1:9000"}))
    assert (c.catalog, c.catalog_type, c.follow, c.poll_interval) == ("default", "sql", False, 10.0)
    assert (c.snapshot_caches, c.as_of_error, c.row_filter) == (4, False, None)
    assert c.source.remote_table == "analytics.stats"
    assert c.properties({}) == {
        "type": "sql",
        "uri": "sqlite:///data/c.db",
        "warehouse": "file:///wh",
        "init_catalog_tables": "false",
        "s3.endpoint": "http://127.0.0.1:9000",
    }


def test_a_rest_catalog_from_its_uri() -> None:
    c = parse(
        spec(
            catalog_uri="https://iceberg.example/api",
            catalog="lake",
            refresh="snapshot",
            poll_interval="500ms",
            snapshot_caches="2",
            as_of_expired="error",
        )
    )
    assert (c.catalog, c.catalog_type, c.follow, c.poll_interval) == ("lake", "rest", True, 0.5)
    assert (c.snapshot_caches, c.as_of_error) == (2, True)
    assert "init_catalog_tables" not in c.properties({})


def test_rest_credentials_come_from_named_variables_only() -> None:
    c = parse(spec(catalog_uri="http://127.0.0.1:8181", token_env="LAKE_TOKEN"))
    assert c.properties({"LAKE_TOKEN": "t0k"})["token"] == "t0k"
    with pytest.raises(ConfigError, match="environment variable LAKE_TOKEN \\(token_env\\) is not"):
        c.properties({})
    c = parse(spec(catalog_uri="http://127.0.0.1:8181", credential_env="LAKE_CRED"))
    assert c.properties({"LAKE_CRED": "id:secret"})["credential"] == "id:secret"
    with pytest.raises(ConfigError, match=r"option 'catalog\.token' would show the secret") as err:
        parse(spec(**{"catalog.token": "t0k"}))
    assert err.value.fields["option"] == "catalog.token"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"refresh": "hourly"}, "option refresh='hourly' is not one of ('none', 'snapshot')"),
        ({"poll_interval": "soon"}, "option poll_interval='soon' is not a duration"),
        ({"snapshot_caches": "0"}, "option snapshot_caches='0' is not a whole number >= 1"),
        ({"spill_rows": "x"}, "option spill_rows='x' is not a whole number >= 1"),
        ({"as_of_expired": "never"}, "option as_of_expired='never' is not one of"),
        ({"cache": "partial"}, "option cache='partial': an Iceberg table is always read"),
        ({"filter": "volume >"}, "option filter='volume >' is not a pyiceberg row filter"),
        ({"colour": "red"}, "unknown option 'colour'"),
        ({"table": ""}, "option 'table' is required for connector='iceberg'"),
    ],
)
def test_bad_options_are_named(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(spec(**options))
    assert str(info.value).startswith("table 'stats': ")
    assert message in str(info.value)
