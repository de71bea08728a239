"""The inspector in a real browser: Debian's headless chromium driven by Playwright, against a
live worker. Every page is opened and checked as a person would; links are clicked through;
screenshots are kept under ``artefacts/inspector/`` (gitignored) for a look.

Chromium is installed by ``scripts/ensure_chromium.sh`` when missing (CI runs as root). Playwright
never downloads a browser here: it launches ``/usr/bin/chromium`` by ``executable_path``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tests.integration.app.inspector_support import XSS, Inspected
from tests.integration.app.inspector_support import live as live  # the fixture
from tests.support.worker import ROOT

#: What the pages show and do in a browser does not depend on the broker under the worker (the
#: JSON behind them runs on both brokers in test_inspector_http.py): Tansu only.
pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.one_broker]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "artefacts" / "inspector"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        subprocess.run([str(ROOT / "scripts" / "ensure_chromium.sh")], check=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


#: The auto-refreshing pages, switched off (as a person unticking the box would) so that a
#: reload cannot land in the middle of a test's clicks; test_auto_refresh checks it reloads.
NO_REFRESH = "".join(
    f"localStorage.setItem('autorefresh:{path}', '0');" for path in ("/ui/", "/ui/queries/")
)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(NO_REFRESH)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:  # an alert() from the data would land here
        dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    context.close()
    assert dialogs == [], "a page ran a script from the data"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_tables_page_lists_tables_and_links_to_one(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/ui/")
    users = page.locator("tr", has=page.get_by_role("link", name="users", exact=True))
    expect(users).to_contain_text("60")  # rows
    expect(users).to_contain_text("ready")
    expect(users).to_contain_text("p0: 0")  # lag of partition 0
    expect(page.get_by_role("link", name="totals", exact=True)).to_be_visible()
    shot(page, "tables")
    page.get_by_role("link", name="users", exact=True).click()
    expect(page.locator("h1")).to_have_text("Table users")
    expect(page.get_by_role("link", name="10", exact=True).first).to_be_visible()


def test_filter_narrows_rows_and_shows_syntax_errors_inline(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/ui/tables/users/")
    all_rows = page.locator("h2:has-text('Rows') + table tbody tr").count()
    assert all_rows == 50  # a full first page, in key order: 1, 10, 11, ..., 54
    page.locator("#next").click()
    rest = page.locator("h2:has-text('Rows') + table tbody tr")
    expect(rest).to_have_count(10)
    expect(rest.first.locator("td").first).to_have_text("55")
    page.goto(f"{live.web}/ui/tables/users/")
    page.locator("#filter input[name=where]").fill("tier = 'gold'")
    page.locator("#filter button").click()
    rows = page.locator("h2:has-text('Rows matching') + table tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("gold")
    shot(page, "table-filtered")
    page.locator("#filter input[name=where]").fill("tier = = 'gold'")
    page.locator("#filter button").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("line 1, column 8")
    expect(alert.locator("pre")).to_have_text("  tier = = 'gold'\n         ^")
    shot(page, "table-filter-error")


def test_a_key_with_its_history_and_as_of(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/ui/tables/users/")
    page.locator("#keysearch input[name=key]").fill("5")
    page.locator("#keysearch button").click()
    expect(page.locator("#key")).to_contain_text("Key 5")
    history = page.locator("h2:has-text('History') + table tbody tr")
    expect(history).to_have_count(3)
    expect(history.nth(0)).to_contain_text('"gold"')  # newest first
    expect(history.nth(1)).to_contain_text('"silver"')
    silver_ms = history.nth(1).locator("td").nth(1).locator("span").get_attribute("title")
    assert silver_ms is not None
    page.locator("input[name=as_of]").fill(silver_ms)
    page.get_by_role("button", name="show").click()
    as_of = page.locator("p:has-text('As of') + pre")
    expect(as_of).to_contain_text('"silver"')
    page.locator("input[name=as_of]").fill("2000-01-01T00:00:00")
    page.get_by_role("button", name="show").click()
    expect(page.locator("main")).to_contain_text("As of 2000-01-01 00:00:00.000Z")
    expect(as_of).to_have_text("null")
    shot(page, "table-key-history")


def test_data_is_shown_as_text_never_run(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/ui/tables/users/?key=7")
    expect(page.locator("pre").filter(has_text=XSS).first).to_be_visible()
    assert page.locator("main script").count() == 0
    shot(page, "table-escaped")


def test_queries_page_shows_sql_plan_and_stages(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/ui/queries/")
    checked = page.locator("section#q-checked")
    expect(checked.locator("pre.sql")).to_contain_text("100 / o.qty AS share")
    expect(checked.locator("pre.plan")).to_contain_text("LookupJoin")
    expect(checked).to_contain_text("running")
    totals = page.locator("section#q-totals tbody tr")
    expect(totals).to_have_count(2)  # the repartition stage and the aggregation
    shot(page, "queries")
    checked.get_by_role("link", name="DivisionByZeroError").click()
    expect(page.locator("h1")).to_contain_text("Dead letters")
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.first.locator(".reason")).to_contain_text("DivisionByZeroError")


def test_dead_letters_page_filters_and_shows_binary_as_hex(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/ui/dead-letters/")
    page.locator("#dlfilter input[name=reason]").fill("JSON")
    page.locator("#dlfilter select").select_option("checked")
    page.locator("#dlfilter button").click()
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("pre.hex")).to_contain_text("00 ff 3c 62 3e")
    expect(rows.first).to_contain_text(f"{live.names['orders']}[")
    shot(page, "dead-letters")


def test_navigation_links(live: Inspected, page: Page) -> None:
    page.goto(f"{live.web}/")
    expect(page.locator("h1")).to_have_text("Tables")
    for name, heading in (
        ("Queries", "Queries"),
        ("Dead letters", "Dead letters"),
        ("Tables", "Tables"),
    ):
        page.locator("header").get_by_role("link", name=name, exact=True).click()
        expect(page.locator("h1")).to_contain_text(heading)
    page.goto(f"{live.web}/ui/tables/nope/")
    expect(page.get_by_role("alert")).to_contain_text("no table named 'nope'")


def test_auto_refresh_reloads_until_unticked(live: Inspected, browser: Browser) -> None:
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(f"{live.web}/ui/queries/")
        expect(pg.locator("#autorefresh")).to_be_checked()
        with pg.expect_event("load", timeout=8_000):
            pass  # the page reloads by itself within its 5 s period
        pg.locator("#autorefresh").uncheck()
        pg.reload()
        expect(pg.locator("#autorefresh")).not_to_be_checked()  # remembered
    finally:
        context.close()
