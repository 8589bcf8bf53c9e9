"""`churn serve`: which bundle it serves when none is named."""

from __future__ import annotations

import argparse
from pathlib import Path

from churn_core.settings import Settings
from churn_inference.cli import add_arguments, model_uri


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_default_is_the_champion_of_the_configured_registry_name(monkeypatch, tmp_path):
    monkeypatch.delenv("CHURN_MODEL_URI", raising=False)
    settings = Settings()
    assert model_uri(_args(), settings, "churn-eu") == "models:/churn-eu@champion"
    assert model_uri(_args("--model-uri", "az://c/b"), settings, "churn-eu") == "az://c/b"
    bundle = tmp_path / "b"
    assert model_uri(_args("--bundle", str(bundle)), settings, "x") == str(Path(bundle).resolve())
    monkeypatch.setenv("CHURN_MODEL_URI", "models:/other@challenger")
    assert model_uri(_args(), Settings(), "churn-eu") == "models:/other@challenger"
