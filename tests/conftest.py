"""Fixtures shared by tests/unit and tests/e2e; helpers live in tests/helpers.py."""

from __future__ import annotations

import os

import pytest

from helpers import require_root_lab


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e needs root and the real lab tools: marked, so `-m "not e2e"`
    runs the fast unit tests alone."""
    for item in items:
        if f"{os.sep}e2e{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def lab5():
    """Five lab hosts for one test module, removed afterwards whatever happens."""
    require_root_lab()
    from rstfleet_lab import lab_context
    name = "e" + str(os.getpid() % 10000)
    with lab_context(5, name) as lab:
        yield lab
