"""The planner: the first rule that applies wins (cheapest first) — ``RULES`` for a subquery,
``JOIN_RULES`` (access paths only) for a joined table."""

from __future__ import annotations

from collections.abc import Callable

from sql.plan.cached_result import cached_result
from sql.plan.full_scan import full_scan
from sql.plan.index_probe import index_probe
from sql.plan.key_lookup import key_lookup
from sql.plan.maintained_aggregate import maintained_aggregate
from sql.plan.maintained_exists import maintained_exists
from sql.plan.maintained_in import maintained_in
from sql.plan.remote_probe import remote_probe
from sql.plan.shape import JoinShape, Plan, SubqueryShape

Rule = Callable[[SubqueryShape], Plan | None]

#: Key lookups first (one ``get``); then maintained results for uncorrelated subqueries (no
#: work per record); index probes for correlated ones; a cache for other uncorrelated shapes;
#: a probe pushed down to an external table's database; a scan last.
RULES: tuple[Rule, ...] = (
    key_lookup,
    maintained_in,
    maintained_exists,
    maintained_aggregate,
    index_probe,
    remote_probe,
    cached_result,
    full_scan,
)


def plan_subquery(shape: SubqueryShape, rules: tuple[Rule, ...] = RULES) -> Plan:
    for rule in rules:
        plan = rule(shape)
        if plan is not None:
            return plan
    raise AssertionError("full_scan always applies")


JoinRule = Callable[[JoinShape], Plan | None]

#: A joined table needs its matching rows per record: a key lookup, an index probe, a probe
#: pushed down to an external table's database, a scan last (flagged; rejected for a table
#: that cannot be listed). The same rules, and so the same access paths, as a subquery's.
JOIN_RULES: tuple[JoinRule, ...] = (key_lookup, index_probe, remote_probe, full_scan)


def plan_join(shape: JoinShape) -> Plan:
    for rule in JOIN_RULES:
        plan = rule(shape)
        if plan is not None:
            return plan
    raise AssertionError("full_scan always applies")
