"""A ClickHouse server over HTTPS (its ``https_port`` with a self-signed certificate made by
openssl for 127.0.0.1): verified against ``ca_file``, refused against the system's CAs, taken
unverified by ``verify='false'``; the TLS options refused where they cannot apply."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from tests.support.clickhouse import READER_PASSWORD, ClickHouseServer, server_table
from tests.support.federation import CUSTOMERS, declaration, external, unique_table


def test_https_with_a_ca_file_or_unverified(clickhouse: ClickHouseServer) -> None:
    if clickhouse.certificate is None:
        pytest.skip("no openssl here: the test server has no HTTPS")
    name = unique_table()
    server_table(clickhouse, name, CUSTOMERS)
    url = clickhouse.url("reader", READER_PASSWORD, https=True)
    base = f"connector='clickhouse', url='{url}', table='{name}', cache='none'"
    want = {"id": 1, "tier": "gold", "credit": CUSTOMERS[1][1], "country": "FR"}
    for tls in (f"ca_file='{clickhouse.certificate}'", "verify='false'"):
        table = external(declaration("c", f"{base}, {tls}"), "c")
        try:
            assert table.get(1) == want
            assert table.get_many([5, 99]) == {
                5: {"id": 5, "tier": "blocked", "credit": CUSTOMERS[5][1], "country": "US"}
            }
            assert "clickhouse https://127.0.0.1:" in table.describe()
            assert table.stats().as_dict()["errors"] == 0
        finally:
            table.close_sync()
    with pytest.raises(ConfigError) as err:  # the system's CAs do not know the certificate
        external(declaration("c", base), "c")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert READER_PASSWORD not in str(err.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("url='http://127.0.0.1:1/db', ca_file='/etc/hosts'", "option ca_file is for an https://"),
        ("url='http://127.0.0.1:1/db', verify='false'", "option verify is for an https://"),
        ("url='https://127.0.0.1:1/db', verify='maybe'", "option verify='maybe' is not one of"),
        ("url='https://127.0.0.1:1/db', ca_file='/no/such.pem'", "ca_file='/no/such.pem': no such"),
    ],
)
def test_tls_options_are_checked(options: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        external(declaration("c", f"connector='clickhouse', {options}, table='t'"), "c")
