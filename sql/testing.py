"""``python -m sql test DIR``: test cases for pipeline files, run offline (as ksqlDB's
ksql-test-runner).

A *case* is a directory holding ``expected/``::

    CASE/
      pipeline.sql          the statements; when absent, the nearest pipeline.sql of a parent
                            directory (so CASE can test the real file, e.g. examples/orders/tests/X)
      input/NAME.jsonl      rows of table NAME or records of stream NAME (JSON Lines, as for
                            ``python -m sql run --table/--stream``)
      events.jsonl          optional: a timeline of table changes and stream records (``--events``)
      expected/QUERY.jsonl  the rows QUERY must emit, in order (one JSON object per line); every
                            query of the pipeline needs one (empty: it must emit nothing)
      expected/QUERY.errors optional: the record errors QUERY must report, one ``record N: ...``
                            line each; without it a record error fails the case

``DIR`` is a case, or a directory searched for cases (sorted by path). Rows compare as JSON
values (``7.5`` equals ``7.50``; key order does not matter). Each failure prints a unified diff of
expected and actual rows; the exit status is 1 when any case failed, 2 when ``DIR`` holds none.
"""

from __future__ import annotations

import argparse
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.codec import JSONDecodeError, dumps, loads_exact
from core.errors import TablestreamError
from sql.runner import QUERY_MARK, Runner, split_queries

PIPELINE = "pipeline.sql"
#: How many parent directories are searched for the case's pipeline.sql.
PIPELINE_SEARCH_DEPTH = 3
E_NO_CASES = "no test cases under {dir} (a case is a directory holding expected/)"
E_NO_PIPELINE = "no pipeline.sql in the case or its parent directories"
E_UNKNOWN_INPUT = "input/{file} names no table or stream of {pipeline} (known: {known})"
E_NO_EXPECTED = "no expected/{query}.jsonl; the query emitted {n} rows"
E_UNEXPECTED_FILE = "expected/{file} names no query of {pipeline} (queries: {queries})"


@dataclass
class Outcome:
    case: Path
    failures: list[str] = field(default_factory=list)
    rows: int = 0
    queries: int = 0


def find_cases(root: Path) -> list[Path]:
    if (root / "expected").is_dir():
        return [root]
    return sorted(p.parent for p in root.rglob("expected") if p.is_dir())


def find_pipeline(case: Path) -> Path | None:
    for d in [case, *case.parents][: PIPELINE_SEARCH_DEPTH + 1]:
        if (d / PIPELINE).is_file():
            return d / PIPELINE
    return None


def _rows(text: str, where: str) -> list[Any]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(loads_exact(line))
            except JSONDecodeError as exc:
                raise TablestreamError(f"{where}:{n}: {exc}") from exc
    return rows


def _shown(row: Any, order: list[str]) -> str:
    """A row as one JSON line, its keys in the actual rows' column order (a readable diff)."""
    if isinstance(row, dict):
        row = {**{k: row[k] for k in order if k in row}, **row}
    return dumps(row).decode()


def diff_rows(query: str, expected: list[Any], actual: list[Any]) -> str:
    order = list(actual[0]) if actual and isinstance(actual[0], dict) else []
    lines = difflib.unified_diff(
        [_shown(r, order) for r in expected],
        [_shown(r, order) for r in actual],
        fromfile=f"expected/{query}.jsonl",
        tofile=f"actual {query}",
        lineterm="",
    )
    return "\n".join(lines)


def run_case(case: Path) -> Outcome:
    outcome = Outcome(case)
    pipeline = find_pipeline(case)
    if pipeline is None:
        outcome.failures.append(E_NO_PIPELINE)
        return outcome
    try:
        queries = [name for name, _ in split_queries(pipeline.read_text(encoding="utf-8"))]
        tables, streams = _declared(pipeline)
    except (TablestreamError, OSError) as exc:
        outcome.failures.append(f"error: {exc}")
        return outcome
    outcome.queries = len(queries)
    args = argparse.Namespace(
        query=str(pipeline), pick=None, table=[], stream=[], events=None, explain=False
    )
    for path in sorted((case / "input").glob("*.jsonl")):
        name = path.stem.lower()
        if name in tables:
            args.table.append(f"{path.stem}={path}")
        elif name in streams:
            args.stream.append(f"{path.stem}={path}")
        else:
            known = ", ".join(sorted(tables | streams))
            outcome.failures.append(
                E_UNKNOWN_INPUT.format(file=path.name, pipeline=pipeline, known=known)
            )
    if (case / "events.jsonl").is_file():
        args.events = str(case / "events.jsonl")
    for path in sorted((case / "expected").iterdir()):
        if path.stem.lower() not in {q.lower() for q in queries}:
            outcome.failures.append(
                E_UNEXPECTED_FILE.format(
                    file=path.name, pipeline=pipeline, queries=", ".join(queries)
                )
            )
    if outcome.failures:
        return outcome
    out, err = io.StringIO(), io.StringIO()
    try:
        Runner(args, out, err).run()
    except (TablestreamError, OSError) as exc:
        outcome.failures.append(f"error: {exc}")
        return outcome
    _compare(outcome, queries, out.getvalue(), err.getvalue())
    return outcome


def _declared(pipeline: Path) -> tuple[set[str], set[str]]:
    """Names of the pipeline's tables and of the streams its queries read (lower case)."""
    tables: set[str] = set()
    streams: set[str] = set()
    for _, script in split_queries(pipeline.read_text(encoding="utf-8")):
        for name, decl in script.declarations.items():
            (tables if decl.kind == "table" else streams).add(name)
        if script.sink is not None:
            (tables if script.sink.kind == "table" else streams).add(script.sink.name.lower())
    return tables, streams


def _compare(outcome: Outcome, queries: list[str], out: str, err: str) -> None:
    case = outcome.case
    emitted: dict[str, list[Any]] = {q: [] for q in queries}
    for row in _rows(out, "output"):
        name = row.pop(QUERY_MARK) if len(queries) > 1 else queries[0]
        emitted[name].append(row)
    errors: dict[str, list[str]] = {q: [] for q in queries}
    for line in err.splitlines():
        name, sep, rest = line.removeprefix("query ").partition(": ")
        if len(queries) > 1 and sep and name in errors:
            errors[name].append(rest)
        else:
            errors[queries[0]].append(line)
    for query in queries:
        actual = emitted[query]
        outcome.rows += len(actual)
        path = case / "expected" / f"{query}.jsonl"
        if not path.is_file():
            outcome.failures.append(E_NO_EXPECTED.format(query=query, n=len(actual)))
            continue
        expected = _rows(path.read_text(encoding="utf-8"), str(path))
        if expected != actual:
            outcome.failures.append(f"{query}: rows differ\n{diff_rows(query, expected, actual)}")
        errors_path = case / "expected" / f"{query}.errors"
        want = errors_path.read_text(encoding="utf-8").splitlines() if errors_path.is_file() else []
        want = [w for w in want if w.strip()]
        if want != errors[query]:
            diff = difflib.unified_diff(
                want, errors[query], f"expected/{query}.errors", f"actual {query}", lineterm=""
            )
            outcome.failures.append(f"{query}: record errors differ\n" + "\n".join(diff))


def run_cases(root: Path, out: IO[str]) -> int:
    cases = find_cases(root)
    if not cases:
        print(E_NO_CASES.format(dir=root), file=out)
        return 2
    failed = 0
    for case in cases:
        outcome = run_case(case)
        if outcome.failures:
            failed += 1
            print(f"FAIL {case}", file=out)
            for failure in outcome.failures:
                print("  " + failure.replace("\n", "\n  "), file=out)
        else:
            print(f"PASS {case} ({outcome.queries} queries, {outcome.rows} rows)", file=out)
    print(f"{len(cases)} cases: {len(cases) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0
