"""docs/configuration.md: generated from `ChurnConfig` and `Settings`, current, complete."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from churn_core.config import ChurnConfig, RetentionAction, ValueRange
from churn_core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "config_reference", ROOT / "tools" / "config_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _dotted_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key of a config class, dotted, walked independently of the tool."""
    names = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _dotted_fields(annotation, dotted)
        else:
            names.append(dotted)
    return names


def test_the_reference_is_current(tool):
    # stale: run `make config-reference` and commit docs/configuration.md
    assert DOC.read_text() == tool.render()


def test_check_mode_fails_on_a_stale_file(tool, tmp_path, monkeypatch, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text(tool.render().replace("`drift.window_size`", "`drift.windowsize`"))
    monkeypatch.setattr(tool, "OUTPUT", stale)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
    stale.write_text(tool.render())
    assert tool.main(["--check"]) == 0


def test_every_config_key_is_documented_with_a_meaning(tool):
    text = DOC.read_text()
    expected = _dotted_fields(ChurnConfig)
    assert len(expected) > 90
    missing = [name for name in expected if f"| `{name}` |" not in text]
    assert not missing, f"keys of ChurnConfig missing from docs/configuration.md: {missing}"
    item = "explainer.retention.<attribute>[]"
    for name in RetentionAction.model_fields:
        assert f"| `{item}.{name}` |" in text
    for name in ValueRange.model_fields:
        assert f"| `{item}.when.{name}` |" in text
    rows = [key for section in tool.config_sections() for key in section.keys]
    assert {key.name for key in rows} >= set(expected)
    blank = [key.name for key in rows if not key.meaning]
    assert not blank, f"keys without a meaning (comment them in core/config.py): {blank}"


def test_every_setting_is_documented_with_a_meaning(tool):
    text = DOC.read_text()
    for name in Settings.model_fields:
        assert f"| `CHURN_{name.upper()}` |" in text, name
    blank = [row.name for row in tool.settings_rows() if not row.meaning]
    assert not blank, f"settings without a meaning: {blank}"
    unknown = set(tool.SETTING_NOTES) - set(Settings.model_fields)
    assert not unknown, f"SETTING_NOTES names settings that do not exist: {unknown}"


def test_defaults_and_ranges_come_from_the_fields(tool):
    rows = {key.name: key for section in tool.config_sections() for key in section.keys}
    window = rows["drift.window_size"]
    assert (window.type, window.default, window.allowed) == ("int", "500", "> 0")
    auc = rows["monitor.floors.roc_auc"]
    assert (auc.default, auc.allowed) == ("0.75", "> 0.5, <= 1")
    steps = rows["rollout.steps"]
    assert steps.type == "list of int" and "each <= 99" in steps.allowed
    assert rows["drift.backend"].type == "scipy | alibi"
    # the value model_config.yaml ships beside the code's default
    depth = rows["models.xgboost.max_depth"]
    assert depth.default == str(ChurnConfig().models.xgboost.max_depth)
    assert get_origin(ChurnConfig.model_fields["rollout"].annotation) is None
    assert get_args(ChurnConfig.model_fields["drift"].annotation) == ()


def test_comments_are_read_from_the_source(tool):
    source = (
        "class A:\n"
        "    # above, line one\n"
        "    # line two\n"
        "    x: int = 1  # inline\n"
        "    y: int = 2\n"
        "    z: str = ''  # only inline\n"
    )
    found = tool.source_comments(source)
    assert found[("A", "x")] == "above, line one line two inline"
    assert ("A", "y") not in found
    assert found[("A", "z")] == "only inline"
    yaml_text = "a:  # section\n  b: 1  # bee\n  c: '#not' # cee\nd: 2\n"
    assert tool.yaml_comments(yaml_text) == {"a": "section", "a.b": "bee", "a.c": "cee"}
