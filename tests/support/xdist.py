"""pytest-xdist's ``--dist loadgroup`` on pytest >= 9.2.

xdist learns a test's group from a ``@group`` suffix its worker-side hook appends to the test's
node id (in the legacy ``Item._nodeid`` field). pytest 9.2 keeps node ids in a structured
``Item._id`` instead, so the suffix is lost and every test is scheduled on its own (xdist issue
#1386, fix pending upstream). This plugin, run after xdist's hook, appends the suffix where it is
missing; with a pytest or xdist that does it right it finds the suffix there and does nothing.
"""

from __future__ import annotations

import pytest


class LoadGroupIds:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if not getattr(config.option, "loadgroup", False):  # set in xdist workers only
            return
        from _pytest.nodeid import NodeId

        for item in items:
            names = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
            if not names or "@" in item.nodeid.rsplit("]", 1)[-1]:
                continue
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


def register(config: pytest.Config) -> None:
    """Install the fix in an xdist worker running on a pytest with structured node ids."""
    try:
        import _pytest.nodeid  # noqa: F401  (pytest >= 9.2)
    except ImportError:
        return
    config.pluginmanager.register(LoadGroupIds(), "tablestream-loadgroup-ids")
