"""The one-way flow, read from the imports: stages never import the engine, the CLI or the reports, and
the data stage imports no later stage (nor the config)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "adbench"
STAGES = ("data", "backbones", "noise_nets", "diffusion", "metrics", "scorers")
LATER = ("adbench.engine", "adbench.cli", "adbench.reporting", "adbench.api", "adbench.columns")


def imports_of(package: str) -> dict[str, set[str]]:
    """file -> every module it imports (top level, in functions and under TYPE_CHECKING alike); ``package``
    is a folder of the package or one of its modules (``config.py``)."""
    out = {}
    where = PACKAGE / package
    for path in sorted(where.rglob("*.py") if where.is_dir() else [where]):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        out[str(path.relative_to(PACKAGE))] = names
    return out


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{file} imports {name}" for file, names in imports_of(package).items() for name in sorted(names)
            if name.startswith(forbidden)]


@pytest.mark.parametrize("stage", STAGES)
def test_stages_do_not_import_the_engine_cli_or_reports(stage):
    assert offending(stage, LATER) == []


def test_data_imports_no_config_and_no_later_stage():
    assert offending("data", ("adbench.config", "adbench.scorers", "adbench.diffusion", "adbench.backbones",
                              "adbench.noise_nets", "adbench.metrics")) == []


def test_the_config_imports_no_stage():
    """Stages read the config; the config and the leaf modules it reads never import a stage."""
    stages = tuple(f"adbench.{s}" for s in STAGES) + LATER
    for leaf in ("config.py", "protocols.py", "hashing.py", "errors.py"):
        assert offending(leaf, stages) == [], leaf


def test_the_catalogue_imports_only_the_registry():
    """adbench/components.py names every built-in component without importing one (`list` and `--help`
    stay free of torch); a stage module that registered itself would be loaded by every lookup."""
    assert imports_of("components.py") == {"components.py": {"adbench.registry"}}
    registering = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                   for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
                   and isinstance(node.func, ast.Attribute) and node.func.attr in ("register", "declare")
                   and isinstance(node.func.value, ast.Name) and node.func.value.id.isupper()]
    assert set(registering) == {"components.py"}


def test_the_check_sees_imports():
    assert "adbench.data.base" in imports_of("data")["data/mvtec.py"]  # it reads real files
    assert offending("engine", LATER)  # and would name an offender


def test_every_install_hint_names_this_projects_distribution():
    """`adbench` on the package index is another project: every `pip install '<name>[extra]'` in the package and
    the README names the distribution of pyproject.toml, and provenance records its version."""
    import re

    from adbench.provenance import PACKAGES

    root = PACKAGE.parent
    name = re.search(r'^\[project\][^\[]*?^name = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M | re.S)[1]
    texts = [p.read_text() for p in [root / "README.md", *PACKAGE.rglob("*.py")]]
    hints = [m for text in texts for m in re.findall(r"'([\w.-]+)\[(\w+)\]'", text)]
    named = {distribution for distribution, _ in hints} - {"."}  # '.[ray]': this checkout, installed editable
    assert len(hints) >= 6 and named == {name}
    assert PACKAGES["adbench"] == name != "adbench"


def runtime_imports() -> dict[str, set[str]]:
    """module -> the adbench modules it imports when it runs (top level and in functions; not the imports under
    ``if TYPE_CHECKING:``, which annotations alone read)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        names = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adbench"):
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.startswith("adbench"))
        out[module] = names - {module}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (its strongly connected components of more than one module)."""
    order, low, stack, found, counter = {}, {}, [], [], [0]

    def visit(v: str) -> None:
        order[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return found


def test_no_import_cycle_also_through_function_level_imports():
    assert cycles(runtime_imports()) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check sees one
    assert "adbench.engine.submission" in runtime_imports()["adbench.engine.scoring"]  # function-level imports count
