"""The model's config an lflow-dist checkpoint stores (its root attribute `config`, JSON).

The fields, their kinds and defaults are lflow-dist's own: fields.json, which
`lflow-dist config --fields --json` writes (a test checks it against the binary), not a copy
kept by hand. This package reads the model's part only (ModelConfig: architecture, physics,
the objective, precision, prediction); how the model was trained is the checkpoint's
`training` attribute, which it does not need. A checkpoint of schema 1 kept every field in
`config`; the training's and the run's fields there are known (fields.json lists them) and
skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import field

__all__ = ["Config", "CHOICES", "FIELDS", "ALIASES", "RETIRED"]

#: Every config field as lflow-dist defines it (`lflow-dist config --fields --json`, generated
#: into fields.json beside this file and checked against the binary by the tests): name, part
#: (model, train, run), kind (int, real, choice), default, choices, allowed values and meaning,
#: in lflow-dist's order.
with open(os.path.join(os.path.dirname(__file__), "fields.json"), encoding="utf-8") as _file:
    _TABLE = json.load(_file)
#: The model's fields (`part` "model"); the others are the training's and the run's.
FIELDS = [f for f in _TABLE["fields"] if f["part"] == "model"]
#: The names of the training's and the run's fields, which a schema-1 checkpoint's `config` holds.
OTHER_PARTS = frozenset(f["name"] for f in _TABLE["fields"] if f["part"] != "model")

#: The accepted values of every choice field, as lflow-dist spells them.
CHOICES = {f["name"]: tuple(f["choices"]) for f in FIELDS if f["kind"] == "choice"}

#: Old names of choice values, still read (never written): {field: {old: new}}.
ALIASES = {f["name"]: f["aliases"] for f in FIELDS if "aliases" in f}

#: Options measured and not adopted (Config.retired): a checkpoint that sets one to the value
#: every run now has loads; any other value is refused with what replaced it.
RETIRED = {r["name"]: r for r in _TABLE["retired"]}

_TYPES = {"int": int, "real": float, "choice": str}


def _same(value, kept: str) -> bool:
    """Whether a checkpoint's value is the retired field's kept value (as text or as a number)."""
    if str(value).strip() == kept:
        return True
    try:
        return float(value) == float(kept)
    except (TypeError, ValueError):
        return False


class _ConfigMethods:
    """The methods of `Config`, whose fields come from fields.json."""

    # Derived sizes (Config.swift)
    @property
    def second_order(self) -> bool:
        return self.dynamics == "secondOrder"

    @property
    def decoder_parts(self) -> int:
        """H-wide parts of S_t: z, v (second order), h (unless decoderInput zv)."""
        return 1 + (1 if self.second_order else 0) + (1 if self.decoderInput == "zvh" else 0)

    @property
    def decoder_width(self) -> int:
        return self.decoder_parts * self.hidden

    @property
    def group_length(self) -> int:
        return self.hidden // self.groups

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        names = {f["name"]: f for f in FIELDS}
        config = cls()
        for key, value in values.items():
            if key in OTHER_PARTS:
                continue
            if key in RETIRED:
                if not _same(value, RETIRED[key]["kept"]):
                    raise ValueError(f"config: {key} {value}: {RETIRED[key]['why']}.")
                continue
            if key not in names:
                config.extra[key] = value
                continue
            kind = names[key]["kind"]
            if kind == "int":
                value = int(value)
            elif kind == "real":
                value = float(value)
            else:
                value = str(value)
                value = ALIASES.get(key, {}).get(value, value)
                if key in CHOICES and value not in CHOICES[key]:
                    raise ValueError(f"config: {key} must be one of {', '.join(CHOICES[key])}, got '{value}'")
            setattr(config, key, value)
        if config.extra:
            warnings.warn(f"config keys unknown to this lflow_dist version: {sorted(config.extra)}; "
                          "a newer lflow-dist wrote this checkpoint, and they may change the model", stacklevel=2)
        config.validate()
        return config

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def validate(self) -> None:
        """The architecture checks of Config.validate() (the ones this package relies on)."""
        problems = []
        if self.hidden <= 0 or self.groups <= 0 or self.hidden % self.groups:
            problems.append(f"hidden ({self.hidden}) must be > 0 and divisible by groups ({self.groups})")
        if self.kernelSize <= 0 or self.kernelSize % 2 == 0:
            problems.append(f"kernelSize must be odd and > 0 (got {self.kernelSize})")
        if self.decoder == "transformer" and (self.heads <= 0 or self.decoder_width % self.heads):
            problems.append(f"decoder width {self.decoder_width} must be divisible by heads ({self.heads})")
        if not 0 <= self.factors <= self.decoder_width:
            problems.append(f"factors must be 0 to {self.decoder_width} (got {self.factors})")
        if self.decoder == "linear" and self.positionalEncoding != "none":
            problems.append("the linear decoder has no positional encoding")
        if problems:
            raise ValueError("impossible config:\n  - " + "\n  - ".join(problems))


#: The model's config an lflow-dist checkpoint stores: one attribute per model field of fields.json,
#: with lflow-dist's defaults, and `extra`, the keys of a checkpoint this version does not know
#: (kept, with a warning).
Config = dataclasses.make_dataclass(
    "Config",
    [(f["name"], _TYPES[f["kind"]], field(default=_TYPES[f["kind"]](f["default"]))) for f in FIELDS]
    + [("extra", dict, field(default_factory=dict, repr=False, compare=False))],
    bases=(_ConfigMethods,),
    namespace={"__doc__": "The resolved config of an lflow-dist checkpoint (fields: lflow-dist config --fields)."},
)
Config.__module__ = __name__
