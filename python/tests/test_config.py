"""The package's Config is lflow-dist's: fields.json is what the binary prints, and a
checkpoint's config round-trips."""

import json
from pathlib import Path

import pytest

from lflow_dist.config import CHOICES, FIELDS, OTHER_PARTS, RETIRED, Config

TINY = Path(__file__).resolve().parents[2] / "Configs" / "tiny.yaml"


def test_fields_json_is_the_binarys(run_lflow):
    """fields.json is generated (`lflow-dist config --fields --json > python/lflow_dist/fields.json`);
    a field added, renamed or given another default in Config.swift fails here until it is
    generated again."""
    printed = json.loads(run_lflow("config", "--fields", "--json"))
    assert printed["retired"] == list(RETIRED.values())
    assert [f for f in printed["fields"] if f["part"] == "model"] == FIELDS, "python/lflow_dist/fields.json is stale: regenerate it with lflow-dist config --fields --json"


def test_defaults_and_round_trip(run_lflow):
    """Config() holds lflow-dist's model defaults, and the model part of a config lflow-dist
    resolves (as a checkpoint stores it) survives from_dict; the training's fields of a schema-1
    checkpoint are skipped."""
    default = Config().to_dict()
    assert default == {f["name"]: f["default"] for f in FIELDS}
    resolved = json.loads(run_lflow("config", "--config", TINY, "--set", "posterior=perStep", "--json"))
    model = {k: v for k, v in resolved.items() if k not in OTHER_PARTS}
    assert set(resolved) - set(model) == OTHER_PARTS
    assert Config.from_dict(resolved).to_dict() == model
    changed = dict(default, hidden=64, posterior="perStep", dt=0.05)
    assert Config.from_dict(changed).to_dict() == changed
    assert CHOICES["posterior"] == ("initial", "perStep")


def test_retired_and_renamed_values():
    """A checkpoint of an earlier version loads when its retired fields hold the value every run
    now has (decoderLayers 1, lrSchedule plateau, validationMetric heldOut), and is refused with
    the replacement otherwise; cdGradient's old value `spec` reads as droppedAndSampled."""
    old = dict(Config().to_dict(), decoderLayers=1, lrSchedule="plateau", validationMetric="heldOut", cdGradient="spec")
    config = Config.from_dict(old)
    assert config.cdGradient == "droppedAndSampled" and not config.extra
    with pytest.raises(ValueError, match="decoderLayers 2: decoderLayers was retired.*one layer"):
        Config.from_dict(dict(old, decoderLayers=2))
    with pytest.raises(ValueError, match="lrSchedule cosine: lrSchedule was retired"):
        Config.from_dict(dict(old, lrSchedule="cosine"))
