"""The Makefile: `make help` lists every target, and `make test` fails when no test ran."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_every_target():
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):(?!=)", text, flags=re.M))
    phony = set(" ".join(re.findall(r"^\.PHONY:(.*)$", text, flags=re.M)).split())
    proc = _make("help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert targets, "no targets found in the Makefile"
    assert targets <= listed, f"targets without a ## comment: {sorted(targets - listed)}"
    assert phony <= targets, f".PHONY names unknown targets: {sorted(phony - targets)}"


def test_make_test_fails_when_pytest_collects_nothing():
    # -o install: do not (re)install here; only the test recipe runs.
    proc = _make(
        "-o",
        "install",
        "test",
        "PYTEST_ARGS=tests/unit/test_makefile.py -k no_test_has_this_name -p no:cacheprovider",
    )
    assert "no tests ran" in proc.stdout or "deselected" in proc.stdout, proc.stdout
    assert proc.returncode != 0
