"""docs/configuration.md, generated from the typed configuration and the runtime settings.

Every key of `ChurnConfig` (`core/config.py`, loaded from `model_config.yaml`)
with its dotted name, type, default, the value `model_config.yaml` ships, the
allowed range (from the `Field` constraints) and its meaning; then every
`CHURN_*` variable of `Settings` (`core/settings.py`). A key's meaning is its
`Field(description=...)` where one is given, else the comment on or directly
above the field in `core/config.py`, else the comment on its line in
`model_config.yaml`; a section's text is its class docstring.

    .venv/bin/python tools/config_reference.py          # rewrite docs/configuration.md
    .venv/bin/python tools/config_reference.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import re
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from churn_core import config as config_module
from churn_core import settings as settings_module
from churn_core.config import ChurnConfig
from churn_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "configuration.md"
MODEL_CONFIG = ROOT / "model_config.yaml"

# The meaning of a setting that has no comment in core/settings.py (the test holds every
# key here to a field of `Settings`, so none outlives its setting).
SETTING_NOTES = {
    "config_path": "the `model_config.yaml` every command reads",
    "data_uri": "the Telco CSV: a path, `file://`, `https://`, `az://container/path` or a "
    "blob URL; absent: the SYNTHETIC stand-in where the loop starts",
    "artifact_root": "where runs, bundles and kfp.local outputs go: a folder, "
    "`az://container/prefix` or a blob `https://` URL",
    "mlflow_tracking_uri": "the MLflow tracking server and registry",
    "azure_storage_connection_string": "Azure Blob credentials; empty: "
    "`DefaultAzureCredential` (AKS workload identity)",
    "model_name": "the served model's name (`churn serve --name`)",
    "model_uri": "the bundle served and monitored; empty: `models:/<registry.model_name>@champion`",
    "host": "the address servers bind",
    "http_port": "`churn serve`'s REST port",
    "grpc_port": "`churn serve`'s gRPC port",
    "workers": "ignored with a warning unless 1: one process serves REST and gRPC; "
    "scale with replicas",
    "log_level": "DEBUG, INFO, WARNING, ...",
    "log_json": "log lines as JSON",
    "monitor_port": "`churn monitor serve`'s port",
    "max_batch_rows": "`churn serve` refuses a request of more customers than this: "
    "413 / RESOURCE_EXHAUSTED",
}


@dataclass(frozen=True)
class Key:
    """One documented key: a row of the reference."""

    name: str
    type: str
    default: str
    shipped: str
    allowed: str
    meaning: str


@dataclass(frozen=True)
class Section:
    """A config class: its dotted prefix, its docstring and its keys."""

    name: str
    doc: str
    keys: tuple[Key, ...]


def source_comments(source: str) -> dict[tuple[str, str], str]:
    """(class name, field name) -> the comment on the field's line or directly above it."""
    inline: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            inline[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.AnnAssign):
                continue
            if not isinstance(statement.target, ast.Name):
                continue
            above: list[str] = []
            line = statement.lineno - 1  # 1-based line above the statement
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, lines[line - 1].strip().lstrip("#").strip())
                line -= 1
            end = statement.end_lineno or statement.lineno
            after = [inline[n] for n in range(statement.lineno, end + 1) if n in inline]
            text = " ".join(above + after).strip()
            if text:
                found[(node.name, statement.target.id)] = text
    return found


_YAML_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def yaml_comments(text: str) -> dict[str, str]:
    """Dotted key -> the comment at the end of its line in `model_config.yaml`."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = _YAML_KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        comment = _trailing_comment(match["rest"])
        if comment:
            found[".".join(key for _, key in stack)] = comment
    return found


def _trailing_comment(text: str) -> str:
    """The text after a YAML comment's `#` (one outside quotes, after a space), or ''."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[i + 1 :].strip()
    return ""


def _type_text(annotation: Any) -> str:
    """An annotation as a reader names it: `int`, `list of float`, `a | b`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_text(a) for a in args)
    if origin is tuple:
        item = args[0] if args else Any
        return f"list of {_type_text(item)}"
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"mapping {_type_text(args[0])} -> {_type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if isinstance(annotation, type):
        return {"str": "string", "bool": "boolean"}.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        if isinstance(item, at.Ge):
            out.append(f">= {item.ge}")
        elif isinstance(item, at.Gt):
            out.append(f"> {item.gt}")
        elif isinstance(item, at.Le):
            out.append(f"<= {item.le}")
        elif isinstance(item, at.Lt):
            out.append(f"< {item.lt}")
        elif isinstance(item, at.MinLen):
            out.append(f"at least {item.min_length} long")
        elif isinstance(item, at.MaxLen):
            out.append(f"at most {item.max_length} long")
    return out


def _item_constraints(annotation: Any) -> list[str]:
    """Constraints on the items of a list (`tuple[Annotated[int, Field(ge=1)], ...]`)."""
    if typing.get_origin(annotation) is not tuple:
        return []
    args = typing.get_args(annotation)
    if not args or typing.get_origin(args[0]) is not typing.Annotated:
        return []
    metadata: list[Any] = []
    for extra in typing.get_args(args[0])[1:]:
        metadata.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
    return [f"each {c}" for c in _constraints(metadata)]


def _value_text(value: Any) -> str:
    if value is PydanticUndefined:
        return "(required)"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        return f'"{value}"' if value == "" else value
    if isinstance(value, bool):
        return "true" if value else "false"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def _shipped(shipped: dict[str, Any], dotted: str) -> str:
    node: Any = shipped
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return "-"
        node = node[part]
    if isinstance(node, dict) and len(yaml.safe_dump(node)) > 60:
        return f"{len(node)} entries"
    return _value_text(node)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The config class a field holds directly, or as the items of a mapping of lists."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    """`dict[str, list[Model]]` -> Model (the retention catalogue's actions)."""
    if typing.get_origin(annotation) is not dict:
        return None
    value = typing.get_args(annotation)[1]
    if typing.get_origin(value) is list:
        item = typing.get_args(value)[0]
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def _union_models(annotation: Any) -> list[type[BaseModel]]:
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return []
    args = typing.get_args(annotation)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def walk(
    model: type[BaseModel],
    prefix: str,
    shipped: dict[str, Any],
    code_comments: dict[tuple[str, str], str],
    file_comments: dict[str, str],
) -> Iterator[Section]:
    """The section of `model` at `prefix`, then every section nested in it, depth first."""
    keys = []
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        sub = _nested_model(field.annotation)
        if sub is not None:
            nested.append((sub, dotted))
            continue
        meaning = (
            field.description
            or code_comments.get((model.__name__, name))
            or file_comments.get(dotted)
            or ""
        )
        item = _list_item_model(field.annotation)
        if item is not None:
            nested.append((item, f"{dotted}.<attribute>[]"))
        allowed = _constraints(field.metadata) + _item_constraints(field.annotation)
        for union_model in _union_models(field.annotation):
            nested.append((union_model, f"{dotted}"))
        keys.append(
            Key(
                name=dotted,
                type=_type_text(field.annotation),
                default="(required)" if field.is_required() else _value_text(field.get_default()),
                shipped=_shipped(shipped, dotted) if "<" not in dotted else "-",
                allowed=", ".join(allowed),
                meaning=meaning,
            )
        )
    doc = inspect.cleandoc(model.__doc__ or "")
    if keys:
        yield Section(prefix or "(top level)", doc, tuple(keys))
    for sub, dotted in nested:
        yield from walk(sub, dotted, shipped, code_comments, file_comments)


def config_sections() -> list[Section]:
    """Every section of `ChurnConfig`, in the order of the class."""
    code = source_comments(Path(inspect.getfile(config_module)).read_text())
    text = MODEL_CONFIG.read_text()
    shipped = yaml.safe_load(text) or {}
    return list(walk(ChurnConfig, "", shipped, code, yaml_comments(text)))


def settings_rows() -> list[Key]:
    """Every `Settings` field as its `CHURN_*` variable."""
    comments = source_comments(Path(inspect.getfile(settings_module)).read_text())
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append(
            Key(
                name=f"{prefix}{name}".upper(),
                type=_type_text(field.annotation),
                default=_value_text(field.get_default()),
                shipped="-",
                allowed="",
                meaning=field.description
                or comments.get(("Settings", name))
                or SETTING_NOTES.get(name, ""),
            )
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else ""


def _code(text: str) -> str:
    return f"`{text}`" if text and text not in ("-", "(section)") else text


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        "<!-- generated by tools/config_reference.py (make config-reference); "
        "edit core/config.py, core/settings.py or model_config.yaml instead -->",
        "",
        "Two sources configure the platform. `model_config.yaml` shapes the model "
        "and the services (`core/config.py`, `ChurnConfig`): unknown keys are rejected, "
        "`${VAR}` and `${VAR:-default}` are expanded, and every problem is reported at "
        "once as `file: dotted.key = value: what is allowed`. A key left out takes the "
        "*default* below; the *shipped* column is the value in this repository's "
        "`model_config.yaml`. Runtime settings (paths, URIs, ports) are `CHURN_*` "
        "environment variables (`core/settings.py`, `Settings`), at the end.",
        "",
        "Rules over several keys (tenure bands ascending, `min_window_size <= "
        "window_size`, `trigger.k <= trigger.n`, canary steps increasing, not both "
        "selection weights 0, ...) are checked at load too; see `core/config.py`.",
        "",
        "## `model_config.yaml`",
        "",
    ]
    for section in config_sections():
        out += [f"### `{section.name}`", ""]
        if section.doc:
            out += [" ".join(section.doc.split()), ""]
        out += [
            "| key | type | default | shipped | allowed | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for key in section.keys:
            out.append(
                f"| `{key.name}` | {_cell(key.type)} | {_cell(_code(key.default))} "
                f"| {_cell(_code(key.shipped))} | {_cell(key.allowed)} | {_cell(key.meaning)} |"
            )
        out.append("")
    out += [
        "## `CHURN_*` environment variables",
        "",
        " ".join(inspect.cleandoc(Settings.__doc__ or "").split()),
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for row in settings_rows():
        out.append(
            f"| `{row.name}` | {_cell(row.type)} | {_cell(_code(row.default))} "
            f"| {_cell(row.meaning)} |"
        )
    out += [
        "",
        "`churn serve` also reads `CHURN_LOG_URL` (the payload logger's sink, as "
        "`--log-url`); the chart sets the variables for each workload "
        "(`helm/churn/README.md`).",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Write docs/configuration.md, or with --check say whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.is_file() else ""
        if current != text:
            stale = OUTPUT.relative_to(ROOT)
            print(f"{stale} is stale: run make config-reference", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
