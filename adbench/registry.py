"""One generic registry for datasets, backbones, noise nets and scorers, plus entry-point plugins.

The built-in components are declared by name in ``adbench.components`` (their modules are imported when
first used). Third-party packages register components by exposing an entry point in the group
``adbench.plugins`` that points at a module (or callable); loading it runs its ``@register`` calls.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from adbench.errors import ConfigError

if TYPE_CHECKING:  # the stage packages' contracts; they import this module to register
    from adbench.backbones.base import Backbone
    from adbench.data.base import Dataset
    from adbench.noise_nets.base import NoiseNet
    from adbench.scorers.base import Scorer

__all__ = ["ABILITIES", "BACKBONES", "DATASETS", "NOISE_NETS", "PLUGIN_GROUP", "REGISTRIES", "SCORERS", "T",
           "TYPE_NAMES", "check_names", "Entry", "fits", "load_components", "module_source", "Registry",
           "simple_types"]

T = TypeVar("T")

PLUGIN_GROUP = "adbench.plugins"


# What a component of each kind may declare it can do (its card's ``abilities``), read by the engine instead of
# probing the component; a test checks each declaration against the component itself.
ABILITIES: dict[str, dict[str, str]] = {
    "datasets": {"validation_normals": "normal images set apart for validation (data.held_out: validation)",
                 "defect_regions": "each defect's own mask and saturation area (AU-sPRO)",
                 "private_tests": "unlabelled private test sets, written for an evaluation server (scoring.submission)",
                 "validation_split": "its own labelled validation split: studies score on it, not on carved normals",
                 "mad_over_available": "a row's mAD is the mean of the metrics that exist (BMAD's convention)"},
    "backbones": {},
    "noise-nets": {},
    "scorers": {"no_model": "scores without a noise net (nothing is trained for it)",
                "reference": "a reference without diffusion: marked with a dagger in tables, never ranked"},
}


@dataclass(frozen=True)
class Entry:
    """A component's card: its name, factory and one-line description, the arguments it is built with, what it
    can do (``ABILITIES``), the name figures show, and for a noise net the parameter counts papers print."""

    name: str
    target: Callable[..., Any] | str  # the factory, or "module:attribute", imported when first needed
    description: str
    defaults: dict[str, Any]
    abilities: frozenset[str] = frozenset()
    paper_params_m: float | None = None  # noise nets: InvAD Table 8's count, millions
    unused_official: tuple[str, int] | None = None  # noise nets: official modules its forward never calls, params

    def can(self, ability: str) -> bool:
        return ability in self.abilities

    @property
    def factory(self) -> Callable[..., Any]:
        if callable(self.target):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)


class Registry(Generic[T]):
    """Named factories of one kind of component; ``create`` returns the kind's contract ``T``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def declare(self, name: str, target: Callable[..., Any] | str, description: str, /, *,
                card: dict[str, Any] | None = None, **defaults: Any) -> None:
        """Register ``target`` (a factory, or ``"module:attribute"`` imported when first built) as ``name``,
        with ``defaults`` for its arguments; ``card``: the rest of its card (``abilities``, ...)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        card = dict(card or {})
        abilities = frozenset(card.pop("abilities", ()))
        unknown = sorted(abilities - set(ABILITIES.get(self.kind, {})))
        if unknown:
            raise ValueError(f"{self.kind} {name!r}: unknown abilities {unknown}; a {self.kind[:-1]} may declare "
                             f"{sorted(ABILITIES.get(self.kind, {}))}")
        self._entries[name] = Entry(name, target, description, dict(defaults), abilities, **card)

    def register(self, name: str, description: str = "", /, *, card: dict[str, Any] | None = None,
                 **defaults: Any) -> Callable:
        """Decorator: ``@REG.register("name", "one-line description", key=default)``; the description
        defaults to the first line of the factory's docstring; ``card`` as ``declare``'s."""

        def wrap(factory: Callable) -> Callable:
            self.declare(name, factory, description or ((factory.__doc__ or "").strip().splitlines() or [""])[0],
                         card=card, **defaults)
            return factory

        return wrap

    def can(self, name: str, ability: str) -> bool:
        """Whether ``name``'s card declares ``ability`` (False for an unknown name: ``get`` names it elsewhere)."""
        try:
            return self.get(name).can(ability)
        except ConfigError:
            return False

    def get(self, name: str) -> Entry:
        """The entry of ``name``; ``family:rest`` resolves to a registered ``family:*`` entry."""
        load_components()
        family = name.split(":", 1)[0] + ":*" if ":" in name else None
        if family in self._entries:
            return self._entries[family]
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(
                f"Unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}. "
                f"Run `adbench list {self.kind}` to see them all."
            )
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the component ``name``; ``kwargs`` override its registered defaults."""
        entry = self.get(name)
        if entry.name.endswith(":*"):
            kwargs = {"model_name": name.split(":", 1)[1], **kwargs}
        return entry.factory(**{**entry.defaults, **kwargs})

    def check(self, name: str, what: str, **given: Any) -> None:
        """Refuse arguments ``create(name, **given)`` would not take (unknown or missing), naming the
        component's arguments; ``what`` says where they were set (e.g. ``noise_net.args``)."""
        entry = self.get(name)
        fixed = {"model_name": name.split(":", 1)[1]} if entry.name.endswith(":*") else {}
        signature = inspect.signature(entry.factory)
        try:
            signature.bind(**{**entry.defaults, **fixed, **given})
        except TypeError as exc:
            accepted = [p for p in signature.parameters if p not in ("self", *fixed)]
            raise ConfigError(f"{what}: {self.kind[:-1]} {name!r} {exc}; it takes {accepted}") from None
        self.check_types(name, what, **given)

    def check_types(self, name: str, what: str, **given: Any) -> None:
        """Refuse an argument whose value is not the plain type (int, float, str, bool) its factory annotates,
        naming it and that type; the factory is not imported."""
        expected = simple_types(self.get(name))
        for arg, value in given.items():
            kind = expected.get(arg)
            if kind is not None and not fits(value, kind):
                raise ConfigError(f"{what}: {self.kind[:-1]} {name!r} argument {arg} must be {TYPE_NAMES[kind]}, "
                                  f"got {value!r}")

    def arguments(self, name: str, **given: Any) -> dict[str, Any]:
        """The arguments ``create(name, **given)`` builds with: the factory's own defaults, then the
        registered ones, then ``given`` (what a result row records, defaults included)."""
        entry = self.get(name)
        params = inspect.signature(entry.factory).parameters.values()
        own = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        return {**own, **entry.defaults, **given}

    def names(self) -> list[str]:
        load_components()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        load_components()
        return name in self._entries


TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def simple_types(entry: Entry) -> dict[str, type]:
    """The arguments of ``entry``'s factory annotated as a plain int, float, str or bool, with that type. A
    declared ("module:attribute") factory is read from its module's source, not imported: checking an
    argument's type costs no torch import."""
    if callable(entry.target):
        factory = entry.target
        function = factory.__init__ if isinstance(factory, type) else factory
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is not checked
            return {}
        named = [p.name for p in inspect.signature(function).parameters.values()
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {arg: hints[arg] for arg in named if hints.get(arg) in TYPE_NAMES}
    module, _, attribute = entry.target.partition(":")
    source = module_source(module)
    if source is None:
        return {}
    by_name = {kind.__name__: kind for kind in TYPE_NAMES}
    for node in ast.parse(source.read_text()).body:
        if getattr(node, "name", None) != attribute:
            continue
        if isinstance(node, ast.ClassDef):  # its __init__
            node = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if not isinstance(node, ast.FunctionDef):
            return {}
        arguments = [*node.args.args, *node.args.kwonlyargs]
        return {a.arg: by_name[ast.unparse(a.annotation)] for a in arguments
                if a.annotation is not None and ast.unparse(a.annotation) in by_name}
    return {}


def module_source(module: str) -> Path | None:
    """The source file of ``module`` found from its top package's folder, without importing the packages on
    the way (their ``__init__`` may import torch)."""
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None
    for folder in spec.submodule_search_locations:
        for candidate in (Path(folder, *parts).with_suffix(".py"), Path(folder, *parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def fits(value: Any, kind: type) -> bool:
    """Whether ``value`` (from YAML) is a ``kind``: bool is no number; an integer is a float."""
    if kind is bool or isinstance(value, bool):
        return isinstance(value, bool) and kind is bool
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


DATASETS: Registry[Dataset] = Registry("datasets")
BACKBONES: Registry[Backbone] = Registry("backbones")
NOISE_NETS: Registry[NoiseNet] = Registry("noise-nets")
SCORERS: Registry[Scorer] = Registry("scorers")
REGISTRIES = {r.kind: r for r in (DATASETS, BACKBONES, NOISE_NETS, SCORERS)}

_loaded = False


def check_names(named: list[tuple[str, Registry, str, dict[str, Any]]]) -> None:
    """Refuse every unknown name and every argument of the wrong plain type in (where, registry, name,
    arguments) at once, without importing any component (a typo costs what ``adbench list`` costs)."""
    errors = []
    for where, registry, name, arguments in named:
        try:
            registry.check_types(name, where, **arguments)
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))


def load_components() -> None:
    """Declare the built-in components and load every installed plugin, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import_module("adbench.components")
    for ep in entry_points(group=PLUGIN_GROUP):
        loaded = ep.load()
        if callable(loaded):
            loaded()
