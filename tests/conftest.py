"""Shared fixtures: every module in tests/fixtures/ is a pytest plugin.

Each fixture module owns one real component (Azurite, an MLflow server, a
KServe ModelServer, ...) or one kind of test data; add a module there rather
than growing this file.
"""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)
