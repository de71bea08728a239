"""The stream query's per-record stages besides the joins (:mod:`sql.operators.join`): the WHERE
filter run before the joins, the projection (DISTINCT, LIMIT, or one generated row builder) and
the hand-over to an aggregate. Each is a closure ``stage(env, out)``; :mod:`sql.compile.query`
chains them.
"""

from __future__ import annotations

from typing import Any

from sql.operators.aggregate import AggregateOperator
from sql.operators.join import Stage
from sql.runtime import Env, Fn, Read

Out = list[dict[str, Any]]


def project_stage(
    where: Fn | None,
    outputs: list[Fn],
    names: list[str],
    distinct: bool,
    limit: int | None,
    reads: list[Read | None],
) -> Stage:
    """The SELECT list of each record that passes ``where``: one row, unless DISTINCT has seen
    it or LIMIT rows were emitted; without those, :func:`row_builder`'s generated function."""
    seen: set[Any] = set()
    emitted = [0]

    def project(env: Env, out: Out) -> None:
        if where is not None and where(env) is not True:
            return
        if limit is not None and emitted[0] >= limit:
            return
        values = [f(env) for f in outputs]
        if distinct:
            try:
                key: Any = tuple(values)
                hash(key)
            except TypeError:
                from core.codec import dumps

                key = dumps(values)
            if key in seen:
                return
            seen.add(key)
        emitted[0] += 1
        out.append(dict(zip(names, values, strict=True)))

    if not distinct and limit is None:
        return row_builder(outputs, names, reads, where)
    return project


def row_builder(
    outputs: list[Fn], names: list[str], reads: list[Read | None], where: Fn | None = None
) -> Stage:
    """``out.append({name0: f0(env), ...})`` as one generated function: no list, zip or per-column
    loop (outputs run left to right, as the loop would), plain column reads inlined as their
    closure does them. Names, types and closures are bound as globals of the generated code,
    never spliced into its text (only slot numbers are)."""
    namespace: dict[str, Any] = {}
    items = []
    for i, (f, n, read) in enumerate(zip(outputs, names, reads, strict=True)):
        namespace[f"f{i}"], namespace[f"n{i}"] = f, n
        if read is None:
            items.append(f"n{i}: f{i}(env)")
            continue
        slot, namespace[f"k{i}"], namespace[f"t{i}"], namespace[f"c{i}"] = read
        get = f"env[{int(slot)}].get(k{i})"
        if read[2] is None:
            items.append(f"n{i}: {get}")
        else:  # a value of the column's own Python type as it is, else its converter
            items.append(f"n{i}: (v if (v := {get}) is None or type(v) is t{i} else c{i}(v))")
    # A WHERE after the joins (a folded IN's predicate, say) checked first, as project does.
    check = "    if where(env) is not True:\n        return\n" if where is not None else ""
    namespace["where"] = where
    source = f"def project(env, out):\n{check}    out.append({{{', '.join(items)}}})\n"
    exec(compile(source, "<projection>", "exec"), namespace)
    project: Stage = namespace["project"]
    return project


def filter_stage(conds: list[Fn], nxt: Stage) -> Stage:
    """WHERE terms ANDed before the joins: a record passes only when every term is TRUE. Terms
    run in order until one is FALSE, as the three-valued AND does (so the same terms raise)."""
    if len(conds) == 1:
        (cond,) = conds

        def run1(env: Env, out: Out) -> None:
            if cond(env) is True:
                nxt(env, out)

        return run1
    if len(conds) == 2:
        c0, c1 = conds

        def run2(env: Env, out: Out) -> None:
            a = c0(env)
            if a is not False and c1(env) is True and a is True:
                nxt(env, out)

        return run2

    def run(env: Env, out: Out) -> None:
        ok = True
        for c in conds:
            v = c(env)
            if v is False:
                return
            if v is not True:
                ok = False
        if ok:
            nxt(env, out)

    return run


def aggregate_stage(where: Fn | None, aggregate: AggregateOperator) -> Stage:
    """Each record that passes ``where`` into ``aggregate`` (which emits what it decides)."""
    add = aggregate.add

    def run(env: Env, out: Out) -> None:
        if where is not None and where(env) is not True:
            return
        add(env, out)

    return run
