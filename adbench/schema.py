"""JSON Schema of a YAML run config, for editors (``adbench schema``; e.g. yaml-language-server's
``# yaml-language-server: $schema=adbench-config.schema.json``).

Generated from the config itself: every key with its type, default and section; the choices of the
keys that have them; the names of the registered datasets, backbones, noise nets and scorers (plugins
included; ``timm:<model>`` for any timm backbone). Unknown keys are refused, as on load.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adbench.checks import schema_limits
from adbench.config import RunConfig
from adbench.diffusion.train import TrainConfig
from adbench.registry import BACKBONES, DATASETS, NOISE_NETS, SCORERS, Registry

NAMED = {"dataset": DATASETS, "backbone": BACKBONES, "noise_net": NOISE_NETS}  # key -> the registry it names


def names_of(registry: Registry) -> dict[str, Any]:
    """A schema for a registered name: one of the names, or ``family:<anything>`` for a ``family:*`` entry."""
    names = [n for n in registry.names() if not n.endswith(":*")]
    families = [n[:-1] for n in registry.names() if n.endswith(":*")]
    return {"anyOf": [{"enum": names}, *({"type": "string", "pattern": f"^{f}.+"} for f in families)]}


def config_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema = TypeAdapter(RunConfig).json_schema()
    schema["title"] = "adbench run config"
    schema["additionalProperties"] = False
    train = schema["$defs"][TrainConfig.__name__]
    train["additionalProperties"] = False
    for cls, props in ((RunConfig, schema["properties"]), (TrainConfig, train["properties"])):
        for f in dataclasses.fields(cls):
            props[f.name].update(schema_limits(f))
    props = schema["properties"]
    for f in dataclasses.fields(RunConfig):
        prop = props[f.name]
        prop["description"] = f"section: {f.metadata['section']}"
        if f.name in NAMED:
            prop.update(names_of(NAMED[f.name]))
            prop.pop("type", None)
    props["scorers"]["items"] = {"type": "object", "required": ["name"],
                                 "properties": {"name": names_of(SCORERS)}}
    return schema
