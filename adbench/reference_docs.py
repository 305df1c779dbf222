"""The docs site's reference pages, generated from what the code declares: the config sections, the component
registries, the metric table, the result-row catalogue, the CLI and the library API (``docs/hooks.py`` writes
them before ``mkdocs build``; nothing here is written by hand, so nothing goes stale)."""

from __future__ import annotations

import ast
import inspect
import io
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PAGES", "write_reference"]


def cell(value: Any) -> str:
    """``value`` as one Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]) + "\n"


def field_comments(source: str) -> dict[tuple[str, str], str]:
    """(class, field) -> the comment on the field's line and the comment lines right above it."""
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            comments[tok.start[0]] = "" if text.startswith("type: ignore") else text.split("  # type:")[0]
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                above, line = [], item.lineno - 1
                while line >= 1 and lines[line - 1].strip().startswith("#"):
                    above.insert(0, comments.get(line, ""))
                    line -= 1
                inline = comments.get(item.lineno, "")
                inline = inline.split("# ")[-1] if inline.startswith("type: ignore") else inline
                found[(node.name, item.target.id)] = " ".join(filter(None, [*above, inline]))
    return found


def type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def config_page() -> str:
    from adbench import config

    comments = field_comments(Path(config.__file__).read_text())
    parts = ["# Config keys\n", "A run config is YAML in these sections; `adbench schema` writes its JSON Schema. "
             "Flags, `--set` and grid axes take the dotted keys.\n"]
    top = [[f"`{name}`", type_name(field.annotation), field.default,
            comments.get(("RunConfig", name), "")] for name, field in config.RunConfig.model_fields.items()
           if name not in config.sections()]
    parts.append(table(["key", "type", "default", "meaning"], top))
    for section, model in config.sections().items():
        rows = []
        for name, field in model.model_fields.items():
            default = field.default_factory() if field.default_factory else field.default
            rows.append([f"`{section}.{name}`", type_name(field.annotation), f"`{default!r}`",
                         comments.get((model.__name__, name), "")])
        parts += [f"\n## {section}\n", (inspect.getdoc(model) or "") + "\n", table(["key", "type", "default",
                                                                                   "meaning"], rows)]
    return "\n".join(parts)


def components_page() -> str:
    from adbench.registry import REGISTRIES

    parts = ["# Components\n", "Every registered component (plugins included), as `adbench list` shows them; a "
             "config names them, with their arguments in `args` (scorers: beside `name`).\n"]
    for kind, registry in REGISTRIES.items():
        rows = [[f"`{e.name}`", e.description, ", ".join(f"{k}={v!r}" for k, v in e.defaults.items())]
                for e in registry.entries()]
        parts += [f"\n## {kind}\n", table(["name", "description", "declared arguments"], rows)]
    return "\n".join(parts)


def metrics_page() -> str:
    from adbench.columns import passes_of
    from adbench.metrics.table import FPS, MAD, METRICS

    rows = [[f"`{m.key}`", m.header, m.level, "yes" if m.in_mad and not m.optional else "",
             "when asked" if m.optional else "always", ", ".join(passes_of(m)), m.note] for m in METRICS]
    return "\n".join(["# Metrics\n", "The metric table (`adbench/metrics/table.py`): every reported metric once. "
                      "Optional ones are computed when `scoring.extra_metrics` names them; mAD is the mean of the "
                      f"metrics marked in mAD. {MAD.header}: {MAD.note}. {FPS.header}: {FPS.note}.\n",
                      table(["key", "header", "level", "in mAD", "computed", "passes", "meaning"], rows)])


def columns_page() -> str:
    from adbench.columns import GROUPS, ROW_VERSION, catalogue

    parts = ["# Result columns\n", f"Every column of a result row (`metrics.parquet`), row version {ROW_VERSION} "
             "(`adbench/columns.py`). Rows written before a column existed are read with the value it meant "
             "(`upgrade()`), shown as *legacy*; `adbench schema --rows` writes the JSON Schema of a row.\n"]
    for group, title in GROUPS.items():
        rows = []
        for c in (c for c in catalogue() if c.group == group):
            legacy = "derived" if callable(c.legacy) else "" if c.legacy is not None and c.legacy.__class__ is object \
                else repr(c.legacy)
            rows.append([f"`{c.key}`", "any" if c.type is object else c.type.__name__, c.unit, legacy, c.note])
        parts += [f"\n## {title}\n", table(["column", "type", "unit", "legacy", "meaning"], rows)]
    return "\n".join(parts)


def cli_page() -> str:
    import typer

    from adbench.cli import app

    root = typer.main.get_command(app)
    parts = ["# Command line\n", "Every command with its options, as `adbench COMMAND --help` prints them.\n"]

    def add(command: Any, path: str) -> None:
        if hasattr(command, "commands"):
            for name, sub in sorted(command.commands.items()):
                add(sub, f"{path} {name}")
            return
        rows = []
        for p in command.params:
            names = ", ".join(f"`{o}`" for o in [*p.opts, *getattr(p, "secondary_opts", [])]) \
                if p.param_type_name == "option" else f"`{p.name.upper()}`"
            default = "" if p.default in (None, False, ()) or callable(p.default) else f"`{p.default}`"
            rows.append([names, default, getattr(p, "help", "") or ""])
        parts.append(f"\n## `{path}`\n\n{inspect.cleandoc(command.help or '')}\n")
        if rows:
            parts.append(table(["option", "default", "meaning"], rows))

    add(root, "adbench")
    return "\n".join(parts)


def api_page() -> str:
    from adbench import api

    parts = ["# Python API\n", "`import adbench`: each function writes the folder its command writes "
             "(`adbench/api.py`).\n"]
    for name in api.__all__:
        obj = getattr(api, name)
        if not callable(obj):
            continue
        signature = f"{name}{inspect.signature(obj)}".replace("'", "")
        parts.append(f"\n## `{name}`\n\n```python\n{signature}\n```\n\n{inspect.getdoc(obj) or ''}\n")
    return "\n".join(parts)


PAGES: dict[str, Callable[[], str]] = {"config.md": config_page, "components.md": components_page,
                                       "metrics.md": metrics_page, "columns.md": columns_page, "cli.md": cli_page,
                                       "api.md": api_page}


def write_reference(folder: Path) -> list[Path]:
    """Write every reference page into ``folder`` (a page whose text is unchanged is left as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, page in PAGES.items():
        path, text = folder / name, page()
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written
