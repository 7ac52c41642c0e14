"""The package's Config is lflow-dist's: fields.json is what the binary prints, and a
checkpoint's config round-trips."""

import json
from pathlib import Path

from lflow_dist.config import CHOICES, FIELDS, Config

TINY = Path(__file__).resolve().parents[2] / "Configs" / "tiny.yaml"


def test_fields_json_is_the_binarys(run_lflow):
    """fields.json is generated (`lflow-dist config --fields --json > python/lflow_dist/fields.json`);
    a field added, renamed or given another default in Config.swift fails here until it is
    generated again."""
    printed = json.loads(run_lflow("config", "--fields", "--json"))
    assert printed["fields"] == FIELDS, "python/lflow_dist/fields.json is stale: regenerate it with lflow-dist config --fields --json"


def test_defaults_and_round_trip(run_lflow):
    """Config() holds lflow-dist's defaults, and a config lflow-dist resolves (as a checkpoint
    stores it) survives from_dict."""
    default = Config().to_dict()
    assert default == {f["name"]: f["default"] for f in FIELDS}
    resolved = json.loads(run_lflow("config", "--config", TINY, "--set", "posterior=perStep", "--json"))
    assert Config.from_dict(resolved).to_dict() == resolved
    changed = dict(default, hidden=64, posterior="perStep", dt=0.05)
    assert Config.from_dict(changed).to_dict() == changed
    assert CHOICES["posterior"] == ("initial", "perStep")
