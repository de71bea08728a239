"""HTML building blocks of the inspector: the layout, escaping, and small widgets.

Every piece of data goes through :func:`h` (or :func:`url` / :func:`q` for links) before it
reaches the page: a value ``<script>alert(1)</script>`` shows as that text. No template engine,
no build chain, nothing fetched from elsewhere: the CSS and the few lines of JavaScript
(auto-refresh) are inline.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

#: Characters of a value shown in a table cell / in a value box before "… (N more)".
CELL_MAX = 300
VALUE_MAX = 20_000

NAV = (("Tables", "/ui/"), ("Queries", "/ui/queries/"), ("Dead letters", "/ui/dead-letters/"))

CSS = """
:root { --fg:#1d232b; --muted:#5d6875; --line:#d9dee5; --bg:#f6f7f9; --accent:#1f5fbf;
        --ok:#1d7a3a; --warn:#a35c00; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#18202b; color:#fff; padding:10px 24px; display:flex; gap:24px;
         align-items:center; }
header .brand { font-weight:600; letter-spacing:.02em; }
header a { color:#c8d6ea; text-decoration:none; } header a.on, header a:hover { color:#fff; }
header .right { margin-left:auto; font-size:12px; color:#9fb0c6; }
main { padding:18px 24px 40px; max-width:1400px; }
h1 { font-size:20px; margin:4px 0 14px; } h2 { font-size:16px; margin:22px 0 8px; }
a { color:var(--accent); }
table { border-collapse:collapse; background:#fff; border:1px solid var(--line); width:100%; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { background:#eef1f5; font-weight:600; font-size:12px; color:var(--muted); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
pre, code, .mono { font:12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background:#fff; border:1px solid var(--line); padding:8px 10px; margin:0;
      white-space:pre-wrap; word-break:break-word; }
td pre { border:0; padding:0; background:none; }
.card { background:#fff; border:1px solid var(--line); padding:12px 16px; margin:0 0 16px; }
.muted { color:var(--muted); } .small { font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px;
         background:#e5e9ef; }
.badge.ok { background:#dcf1e2; color:var(--ok); } .badge.warn { background:#fdebd3;
  color:var(--warn); } .badge.bad { background:#fbe0de; color:var(--bad); }
form.inline { display:flex; gap:8px; align-items:center; margin:6px 0 12px; flex-wrap:wrap; }
input[type=text], select { padding:5px 8px; border:1px solid #b9c2cd; border-radius:4px;
  font:13px ui-monospace, "DejaVu Sans Mono", monospace; min-width:260px; }
input.wide { flex:1; min-width:420px; }
button { padding:5px 12px; border:1px solid #1f5fbf; background:#1f5fbf; color:#fff;
         border-radius:4px; cursor:pointer; }
.error { border:1px solid #e4a7a2; background:#fdf0ef; color:var(--bad); padding:8px 10px;
         margin:0 0 12px; }
.error pre { background:none; border:0; padding:4px 0 0; color:var(--fg); }
progress { width:160px; height:12px; vertical-align:middle; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(150px, 1fr)); gap:8px;
        margin:0 0 14px; }
.grid div { background:#fff; border:1px solid var(--line); padding:6px 10px; }
.grid b { display:block; font-size:16px; }
.hex { color:#6b3fa0; }
"""

#: Reloads the page every N seconds while the box is ticked (remembered per page).
JS = """
(function () {
  var box = document.getElementById('autorefresh');
  if (!box) return;
  var key = 'autorefresh:' + location.pathname;
  var saved = localStorage.getItem(key);
  if (saved !== null) box.checked = saved === '1';
  var timer = null;
  function arm() {
    if (timer) clearTimeout(timer);
    if (box.checked) timer = setTimeout(function () { location.reload(); }, 5000);
  }
  box.addEventListener('change', function () {
    localStorage.setItem(key, box.checked ? '1' : '0'); arm();
  });
  arm();
})();
"""


def h(value: Any) -> str:
    """Text for HTML, quotes included (safe inside attribute values too)."""
    return html.escape("" if value is None else str(value), quote=True)


def q(**params: Any) -> str:
    """A query string of the non-empty ``params`` (``?a=1&b=x``), or ""."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


def url(*segments: str, trailing: bool = True) -> str:
    """``/ui/<segment>/...`` with each segment percent-encoded (a key may hold ``/`` or ``?``)."""
    path = "/ui/" + "/".join(quote(str(s), safe="") for s in segments)
    return path + ("/" if trailing and segments else "")


def to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str, sort_keys=False)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out (escaped)."""
    if len(text) <= limit:
        return h(text)
    return f'{h(text[:limit])}<span class="muted">… ({len(text) - limit:,} more)</span>'


def cell_value(value: Any) -> str:
    return f"<pre>{clip(to_json(value), CELL_MAX)}</pre>"


def value_box(value: Any) -> str:
    return f"<pre>{clip(to_json(value, indent=2), VALUE_MAX)}</pre>"


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return '<span class="muted">&ndash;</span>'
    if isinstance(value, float):
        return h(f"{value:,.{digits}f}")
    if isinstance(value, int):
        return h(f"{value:,}")
    return h(value)


def ms_time(ms: int | None) -> str:
    if ms is None or ms <= 0:
        return '<span class="muted">&ndash;</span>'
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return f'<span title="{h(ms)}">{h(when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])}Z</span>'


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def badge(state: str) -> str:
    kind = {
        "running": "ok",
        "ready": "ok",
        "failed": "bad",
        "rebuilding": "warn",
        "waiting for tables": "warn",
        "loading": "warn",
        "starting": "warn",
    }.get(state, "")
    return f'<span class="badge {kind}">{h(state)}</span>'


def tabulate(
    headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Collection[int] = ()
) -> str:
    """An HTML table; ``headers`` are escaped here, ``rows`` cells are HTML already."""
    head = "".join(
        f'<th class="num">{h(t)}</th>' if i in numeric else f"<th>{h(t)}</th>"
        for i, t in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def error_box(error: Mapping[str, Any]) -> str:
    where = ""
    if error.get("line"):
        where = f"line {h(error['line'])}, column {h(error.get('column'))}: "
    excerpt = error.get("excerpt") or ""
    pre = f"<pre>{h(excerpt)}</pre>" if excerpt else ""
    return f'<div class="error" role="alert">{where}{h(error.get("error"))}{pre}</div>'


def layout(title: str, body: str, *, active: str = "", refresh: bool = False) -> str:
    nav = "".join(
        f'<a href="{href}"{" class=on" if name == active else ""}>{h(name)}</a>'
        for name, href in NAV
    )
    auto = (
        '<label class="small"><input type="checkbox" id="autorefresh" checked> '
        "auto-refresh (5 s)</label>"
        if refresh
        else ""
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{h(title)} · tablestream</title><style>{CSS}</style></head><body>"
        f'<header><span class="brand">tablestream</span>{nav}'
        f'<span class="right">{auto} <a href="/metrics">metrics</a> · '
        '<a href="/tables/">JSON</a></span></header>'
        f"<main>{body}</main><script>{JS}</script></body></html>"
    )


def error_page(status: int, message: str) -> str:
    return layout(
        f"{status}",
        f'<h1>{h(status)}</h1><div class="error" role="alert">{h(message)}</div>'
        '<p><a href="/ui/">back to the tables</a></p>',
    )
