"""JSON Schema of a YAML run config, for editors (``adbench schema``; e.g. yaml-language-server's
``# yaml-language-server: $schema=adbench-config.schema.json``).

Generated from the config's section models: every key with its type, default, limits and choices; the
names of the registered datasets, backbones, noise nets and scorers (plugins included; ``timm:<model>``
for any timm backbone). Unknown keys are refused, as on load.
"""

from __future__ import annotations

from typing import Any

from adbench.config import RunConfig, sections
from adbench.registry import BACKBONES, DATASETS, NOISE_NETS, SCORERS, Registry

NAMED = {("data", "dataset"): DATASETS, ("backbone", "name"): BACKBONES, ("noise_net", "name"): NOISE_NETS}


def names_of(registry: Registry) -> dict[str, Any]:
    """A schema for a registered name: one of the names, or ``family:<anything>`` for a ``family:*`` entry."""
    names = [n for n in registry.names() if not n.endswith(":*")]
    families = [n[:-1] for n in registry.names() if n.endswith(":*")]
    return {"anyOf": [{"enum": names}, *({"type": "string", "pattern": f"^{f}.+"} for f in families)]}


def config_schema() -> dict[str, Any]:
    schema = RunConfig.model_json_schema()
    schema["title"] = "adbench run config"
    defs = {name: schema["$defs"][model.__name__] for name, model in sections().items()}
    for (section, key), registry in NAMED.items():
        prop = defs[section]["properties"][key]
        prop.pop("type", None)
        prop.update(names_of(registry))
    defs["scoring"]["properties"]["scorers"]["items"] = {"type": "object", "required": ["name"],
                                                          "properties": {"name": names_of(SCORERS)}}
    return schema
