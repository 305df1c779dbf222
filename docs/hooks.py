"""mkdocs hook: the reference pages are generated from the code (adbench.reference_docs) before each build."""

from pathlib import Path

from adbench.reference_docs import write_reference


def on_pre_build(config, **kwargs) -> None:
    write_reference(Path(config["docs_dir"]) / "reference")
