"""The architecture picture: docs/architecture.svg and the README's Mermaid block, one source."""

from __future__ import annotations

import importlib.util
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "architecture", ROOT / "tools" / "architecture.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_svg_and_readme_are_current(tool):
    # stale: run `.venv/bin/python tools/architecture.py` and commit both files
    assert (ROOT / "docs" / "architecture.svg").read_text() == tool.render_svg()
    readme = (ROOT / "README.md").read_text()
    assert readme == tool.readme_with_diagram(readme)


def test_svg_parses_with_a_group_per_box_and_a_line_per_arrow(tool):
    root = ET.fromstring((ROOT / "docs" / "architecture.svg").read_text())
    assert root.tag == f"{SVG_NS}svg"
    groups = {g.get("id") for g in root.iter(f"{SVG_NS}g")}
    assert groups == {box.id for box in tool.BOXES}
    lines = list(root.iter(f"{SVG_NS}polyline"))
    assert len(lines) == len(tool.ARROWS)
    width, height = float(root.get("width")), float(root.get("height"))
    for line in lines:  # every arrow stays on the canvas
        for point in line.get("points").split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= width and 0 <= y <= height, point
    for rect in root.iter(f"{SVG_NS}rect"):
        assert float(rect.get("x", 0)) + float(rect.get("width")) <= width
        assert float(rect.get("y", 0)) + float(rect.get("height")) <= height


def test_boxes_do_not_overlap_and_arrows_name_known_boxes(tool):
    boxes = tool.BOXES
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
            assert apart, f"{a.id} overlaps {b.id}"
    ids = {box.id for box in boxes}
    assert len(ids) == len(boxes)
    for arrow in tool.ARROWS:
        assert {arrow.source, arrow.target} <= ids, arrow


def test_mermaid_block_names_every_box_and_arrow(tool):
    text = tool.render_mermaid()
    assert text.startswith("```mermaid\nflowchart TB\n") and text.endswith("\n```")
    declared = set(re.findall(r"^    (\w+)\[\"", text, flags=re.M))
    assert declared == {box.id for box in tool.BOXES}
    links = re.findall(r"^  (\w+) (?:-->|-\.->)(?:\|\"[^\"]*\"\|)? (\w+)$", text, flags=re.M)
    assert links == [(a.source, a.target) for a in tool.ARROWS]
    # a bare | or " inside a label would end it early in Mermaid
    for label in re.findall(r"\[\"(.*?)\"\]", text):
        assert "|" not in label and '"' not in label


def test_the_loop_is_in_the_picture(tool):
    text = " ".join(" ".join(box.lines) for box in tool.BOXES)
    for part in (
        "ingest",
        "validate",
        "preprocess",
        "features",
        "evaluate",
        "like-for-like gate",
        "register",
        "MLflow",
        "Azure Blob",
        "KServe",
        "explainer",
        "payload logger",
        "Knative Broker",
        "drift service",
        "Prometheus",
        "canary 5 → 25 → 100",
        "churn-scoring",
        "retention list",
    ):
        assert part in text, part
    assert any(a.source == "drift" and a.target == "training" for a in tool.ARROWS)
