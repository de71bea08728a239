"""The web layer's small parts: rolling rates, bytes shown safely, escaping, a query's text."""

from __future__ import annotations

from app.web.deadletters import HEX_MAX, TEXT_MAX, show_bytes
from app.web.html import clip, h, url
from app.web.model import Rates, statement_text, table_view
from app.web.pages_tables import _state
from tables.memory import MemoryTable
from tables.protocol import PartitionStats, TableStats


def test_rates_are_rolling_over_the_window() -> None:
    now = [0.0]
    rates = Rates(clock=lambda: now[0])
    assert rates.rate("x") is None
    for t, v in ((0, 0), (1, 100), (2, 200), (12, 1200), (13, 1200)):
        now[0] = float(t)
        rates.sample("x", v)
    assert rates.rate("x", window=10) == (1200 - 200) / (13 - 2)
    assert rates.rate("x", window=1) == 0.0


def test_bytes_are_text_when_utf8_and_hex_otherwise() -> None:
    assert show_bytes(None).encoding == "null"
    text = show_bytes("é<b>".encode())
    assert (text.text, text.encoding, text.size, text.truncated) == ("é<b>", "utf-8", 5, False)
    binary = show_bytes(b"\x00\xff" * 500)
    assert binary.encoding == "hex"
    assert binary.text.startswith("00 ff 00 ff")
    assert len(binary.text.split()) == HEX_MAX
    assert binary.truncated
    long = show_bytes(b"a" * (TEXT_MAX + 5))
    assert (len(long.text), long.truncated) == (TEXT_MAX, True)
    assert show_bytes(b"bell\x07").encoding == "hex"  # control characters are not text


def test_escaping_and_links() -> None:
    assert h('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    assert clip("<" * 10, 3) == '&lt;&lt;&lt;<span class="muted">… (7 more)</span>'
    assert url("tables", "a/b?c") == "/ui/tables/a%2Fb%3Fc/"


def test_statement_text_is_the_query_alone() -> None:
    sql = "CREATE STREAM s (a INT);\n\n          \nCREATE STREAM o AS\nSELECT a\nFROM s; -- x\n  ;"
    assert statement_text(sql, 4) == "CREATE STREAM o AS\nSELECT a\nFROM s; -- x"
    assert (
        statement_text(sql, 0)
        == "CREATE STREAM s (a INT);\nCREATE STREAM o AS\nSELECT a\nFROM s; -- x"
    )


class LoadingTable(MemoryTable):
    """A table part-way through its first load: 300 of 1000 records read."""

    def stats(self) -> TableStats:
        stats = super().stats()
        stats.ready = False
        stats.records_read = 300
        stats.partitions = {0: PartitionStats(position=300, highwater=1000)}
        return stats


def test_a_loading_table_shows_progress_rate_and_eta() -> None:
    now = [0.0]
    rates = Rates(clock=lambda: now[0])
    table = LoadingTable("big")
    rates.sample("table:big:read", 100)
    now[0] = 10.0
    rates.sample("table:big:read", 300)
    view = table_view(rates, table)
    assert (view.left, view.read_per_s, view.eta_s) == (700, 20.0, 35.0)
    assert view.progress == 0.3
    page = _state(view)
    assert '<progress max="100" value="30.0">' in page
    assert "700 left · 20 rec/s · ETA 35 s" in page
