"""TableSpec.from_options: SQL WITH options become a spec, bad ones a clear ConfigError."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from tables.spec import TableSpec, parse_duration_ms


def test_options_build_a_versioned_spec() -> None:
    spec = TableSpec.from_options(
        "prices",
        "prices-topic",
        "sku",
        {
            "versions": "10",
            "HISTORY_RETENTION": "7d",
            "partitions": "3",
            "partitioned": "true",
            "as_of_expired": "ERROR",
            "changes_topic": "prices-changes",
            "topic": "prices-topic",
        },
    )
    assert spec == TableSpec(
        "prices",
        "prices-topic",
        "sku",
        partitioned=True,
        partitions=3,
        versions=10,
        history_retention_ms=7 * 86_400_000,
        as_of_expired="error",
        changes_topic="prices-changes",
    )
    assert spec.versioned
    assert not TableSpec.from_options("plain", "plain", None, {}).versioned


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("7d", 604_800_000),
        ("12h", 43_200_000),
        ("30m", 1_800_000),
        ("45s", 45_000),
        ("500ms", 500),
        ("1w", 604_800_000),
        ("7", None),
        ("d", None),
        ("-1d", None),
        ("1.5h", None),
    ],
)
def test_durations(text: str, ms: int | None) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"versions": "0"}, "versions='0' is not a whole number >= 1"),
        ({"versions": "ten"}, "versions='ten'"),
        ({"history_retention": "7"}, "history_retention='7' is not a duration"),
        ({"partitions": "-2"}, "partitions='-2'"),
        ({"partitioned": "maybe"}, "partitioned='maybe' is not true or false"),
        ({"as_of_expired": "skip"}, "as_of_expired='skip' is not one of"),
        ({"format": "avro"}, "format='avro'"),
        ({"topic": "other"}, "topic='other' contradicts 'prices'"),
        ({"colour": "red"}, "unknown option 'colour'"),
    ],
)
def test_bad_options_name_table_option_and_value(options: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        TableSpec.from_options("prices", "prices", "sku", options)
    assert needle in str(info.value)
    assert info.value.fields["table"] == "prices"
    assert info.value.fields["option"] == next(iter(options)).lower()
