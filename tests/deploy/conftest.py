"""Tests of the system as deployed across emulated hosts (root): `pytest tests/deploy` or `-m deploy`."""
from __future__ import annotations


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    config.addinivalue_line("markers", "deploy: the system as deployed across emulated hosts "
                            "(network namespaces, root), with TLS and real browsers")
