"""The resolved config an lflow-dist checkpoint stores (its root attribute `config`, JSON).

The defaults are those of Sources/Model/Config.swift (the spec's MC_Maze settings). Only the
architecture and prediction fields change what this package computes; the others (optimiser,
schedule, job) are kept so that `Config.to_dict()` round-trips the checkpoint's attribute.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field

__all__ = ["Config", "CHOICES"]

#: The accepted values of every choice field, as lflow-dist spells them.
CHOICES = {
    "encoderInput": ("current", "lagged"),
    "encoder": ("forward", "bidirectional"),
    "potential": ("allPairs", "diagonal"),
    "potentialInput": ("none", "spikes"),
    "posterior": ("initial", "perStep"),
    "dynamics": ("secondOrder", "firstOrder"),
    "decoder": ("transformer", "linear"),
    "decoderInput": ("zvh", "zv"),
    "positionalEncoding": ("none", "sinusoidal"),
    "cdGradient": ("spec", "dropped"),
    "klScale": ("perTrial", "perEntry"),
    "lrSchedule": ("plateau", "cosine"),
    "evalTrials": ("ignore", "heldIn"),
    "validationMetric": ("heldOut", "loss"),
    "precision": ("float32", "bf16"),
}

#: The most decoder layers lflow-dist stacks (Config.maxDecoderLayers).
MAX_DECODER_LAYERS = 4


@dataclass
class Config:
    # Architecture
    hidden: int = 280
    groups: int = 4
    kernelSize: int = 3
    heads: int = 2
    feedForward: int = 512
    encoderInput: str = "current"
    encoder: str = "forward"
    potential: str = "allPairs"
    potentialInput: str = "none"
    posterior: str = "initial"
    dynamics: str = "secondOrder"
    decoder: str = "transformer"
    decoderInput: str = "zvh"
    positionalEncoding: str = "none"
    factors: int = 0
    decoderLayers: int = 1
    # Physics
    dt: float = 0.01
    mass: float = 1.0
    damping: float = 0.55
    temperature: float = 1.0
    coupling: float = 1.0
    velocityPriorVar: float = 0.1
    # Regularisation
    cdKeep: float = 0.5
    cdGradient: str = "spec"
    dropout: float = 0.1
    decoderDropout: float = 0.1
    klWeight: float = 0.1
    klScale: str = "perTrial"
    klWarmupEpochs: int = 500
    # Optimisation
    learningRate: float = 3e-3
    adamBeta1: float = 0.9
    adamBeta2: float = 0.999
    adamEps: float = 1e-8
    weightDecay: float = 2e-5
    weightDecayWarmupEpochs: int = 500
    gradClip: float = 200.0
    weightAverage: float = 0.0
    lrSchedule: str = "plateau"
    lrFactor: float = 0.95
    lrPatience: int = 10
    minLearningRate: float = 1e-5
    # Training and prediction
    batchSize: int = 256
    epochs: int = 2000
    validationFraction: float = 0.2
    evalTrials: str = "ignore"
    validationMetric: str = "heldOut"
    earlyStoppingPatience: int = 0
    predictionSamples: int = 50
    latentEvery: int = 10
    checkpointEvery: int = 1
    keepCheckpoints: int = 3
    seed: int = 0
    splitSeed: int = -1
    ensemble: int = 1
    # The job
    collectiveTimeoutSeconds: float = 60.0
    maxMinutes: float = 0.0
    precision: str = "float32"
    #: Keys of the checkpoint this version does not know (kept, with a warning).
    extra: dict = field(default_factory=dict, repr=False, compare=False)

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
        names = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        config = cls()
        for key, value in values.items():
            if key not in names:
                config.extra[key] = value
                continue
            kind = names[key].type
            if kind in ("int", int):
                value = int(value)
            elif kind in ("float", float):
                value = float(value)
            else:
                value = str(value)
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
        if not 1 <= self.decoderLayers <= MAX_DECODER_LAYERS:
            problems.append(f"decoderLayers must be 1 to {MAX_DECODER_LAYERS} (got {self.decoderLayers})")
        if self.decoder == "linear" and (self.decoderLayers != 1 or self.positionalEncoding != "none"):
            problems.append("the linear decoder has one layer and no positional encoding")
        if problems:
            raise ValueError("impossible config:\n  - " + "\n  - ".join(problems))
