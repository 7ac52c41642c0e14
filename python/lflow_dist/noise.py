"""lflow-dist's keyed noise in numpy: Philox4x32-10 and the draws of a prediction pass.

Every random draw of lflow-dist is a pure function of (seed, purpose, epoch, step, trial key,
element index) (Sources/Kernels/Philox.swift, Sources/Model/Noise.swift). One Philox block has
the counter (index // 4, trial, step, purpose << 24 | epoch) and the key (seed low 32 bits,
seed high 32 bits); its four words give four uniforms, or four normals by Box-Muller (the
cosine and sine of the pairs (w0, w1) and (w2, w3)). A stochastic prediction pass uses the epoch
key 0xFFFFFF and the pass number as the step, so the same (seed, sample, trial) draws the same
noise here as in `lflow-dist predict`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["philox4x32", "NoisePurpose", "NoiseStream", "PREDICTION_EPOCH", "prediction_noise"]

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)

#: The epoch key reserved for prediction draws (NoiseContext.predictionEpoch).
PREDICTION_EPOCH = 0xFFFFFF


class NoisePurpose:
    """The raw values of Sources/Kernels/Philox.swift's NoisePurpose (distinct counters)."""

    initialisation = 1
    coordinatedDropoutKeep = 2
    coordinatedDropoutPass = 3
    encoderDropout = 4
    posteriorZ = 5
    posteriorV = 6
    langevin = 7
    attentionDropout = 8
    attentionOutputDropout = 9
    feedForwardDropout = 10
    feedForwardOutputDropout = 11
    shuffle = 12
    validationSplit = 13
    synthetic = 14
    # 15..26 were the dropouts of decoder layers 2..4 (decoderLayers, retired); the numbers stay
    encoderReverseDropout = 27
    innovation = 28


def philox4x32(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on arrays of counters (broadcast), keys k0, k1. Returns four uint32 arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & MASK32 for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0 = int(k0) & 0xFFFFFFFF
    k1 = int(k1) & 0xFFFFFFFF
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        c1 = p1 & MASK32
        c3 = p0 & MASK32
        c0 = n0
        c2 = n2
        k0 = (k0 + W0) & 0xFFFFFFFF
        k1 = (k1 + W1) & 0xFFFFFFFF
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


# Swift's Float.pi is rounded toward zero (0x40490FDA), not to nearest as np.float32(np.pi).
_FLOAT_PI = np.frombuffer(np.uint32(0x40490FDA).tobytes(), dtype=np.float32)[0]
_TWO_PI_F32 = np.float32(2) * _FLOAT_PI


def _box_muller_f32(w):
    """Four float32 normals per block from its words (NoiseStream.boxMuller(Float.self))."""
    out = []
    for pair in range(2):
        a = w[2 * pair].astype(np.float64)
        b = w[2 * pair + 1].astype(np.float64)
        u1 = ((a + 1.0) * 2.0 ** -32).astype(np.float32)
        # logf, cosf, sinf: evaluated in double and rounded, i.e. the correctly rounded float
        # result, which glibc's float functions return to within an ulp.
        log_u1 = np.log(u1.astype(np.float64)).astype(np.float32)
        radius = np.sqrt(np.float32(-2) * log_u1)
        angle = _TWO_PI_F32 * (b * 2.0 ** -32).astype(np.float32)
        angle64 = angle.astype(np.float64)
        out.append(radius * np.cos(angle64).astype(np.float32))
        out.append(radius * np.sin(angle64).astype(np.float32))
    return out


def _box_muller_f64(w):
    out = []
    for pair in range(2):
        u1 = (w[2 * pair].astype(np.float64) + 1.0) * 2.0 ** -32
        radius = np.sqrt(-2.0 * np.log(u1))
        angle = 2.0 * 3.141592653589793 * (w[2 * pair + 1].astype(np.float64) * 2.0 ** -32)
        out.append(radius * np.cos(angle))
        out.append(radius * np.sin(angle))
    return out


class NoiseStream:
    """A keyed stream: draws addressed by (seed, purpose, epoch, step, trial, index)."""

    def __init__(self, seed: int, purpose: int, epoch: int = 0, step: int = 0):
        self.seed = int(seed)
        self.purpose = int(purpose)
        self.epoch = int(epoch)
        self.step = int(step)

    def words(self, trials, first: int, count: int):
        """uint32 words of draws first..first+count of each trial: (len(trials), count)."""
        trials = np.asarray(trials, dtype=np.uint64).reshape(-1, 1)
        first_block = first // 4
        last_block = (first + count + 3) // 4
        blocks = np.arange(first_block, last_block, dtype=np.uint64).reshape(1, -1)
        c3 = (self.purpose << 24) | (self.epoch & 0xFFFFFF)
        w = philox4x32(blocks, trials, np.uint64(self.step & 0xFFFFFFFF), np.uint64(c3),
                       self.seed & 0xFFFFFFFF, (self.seed >> 32) & 0xFFFFFFFF)
        return w, first - 4 * first_block

    @staticmethod
    def _interleave(values, offset, count):
        # values: four (trials, blocks) arrays -> (trials, 4*blocks) in draw order.
        stacked = np.stack(values, axis=-1).reshape(values[0].shape[0], -1)
        return stacked[:, offset:offset + count]

    def uniform(self, trials, first: int, count: int):
        """U[0, 1) float64 draws (2^-32 resolution), (len(trials), count)."""
        w, offset = self.words(trials, first, count)
        return self._interleave([x.astype(np.float64) * 2.0 ** -32 for x in w], offset, count)

    def normal(self, trials, first: int, count: int, dtype=np.float32):
        """N(0, 1) draws as lflow-dist's float32 (default) or float64 model draws them."""
        w, offset = self.words(trials, first, count)
        values = _box_muller_f32(w) if np.dtype(dtype) == np.float32 else _box_muller_f64(w)
        return self._interleave(values, offset, count)


def fill(seed, purpose, epoch, step, trial_keys, rows, width, dtype=np.float32):
    """NoiseContext.fill: (rows, B, width), trial b's draws r*width.. fill row r."""
    stream = NoiseStream(seed, purpose, epoch, step)
    draws = stream.normal(trial_keys, 0, rows * width, dtype=dtype)      # (B, rows*width)
    return draws.reshape(len(trial_keys), rows, width).transpose(1, 0, 2).copy()


def prediction_noise(seed: int, sample: int, trial_keys, hidden: int, steps: int, *, second_order: bool,
                     per_step: bool, langevin: bool, dtype=np.float32):
    """The normal draws of stochastic prediction pass `sample` (NoiseContext.prediction).

    Returns a dict of time-major arrays: eps_z (B, H), eps_v (B, H) in second order, eps_u
    (steps-1, B, H) with a per-step posterior, eps_langevin (steps, B, H) (row 0 unused) when the
    transitions are noisy and there is no per-step posterior.
    """
    keys = [int(k) for k in trial_keys]
    common = dict(seed=seed, epoch=PREDICTION_EPOCH, step=sample, trial_keys=keys, dtype=dtype)
    out = {"eps_z": fill(purpose=NoisePurpose.posteriorZ, rows=1, width=hidden, **common)[0]}
    if second_order:
        out["eps_v"] = fill(purpose=NoisePurpose.posteriorV, rows=1, width=hidden, **common)[0]
    if per_step and steps > 1:
        out["eps_u"] = fill(purpose=NoisePurpose.innovation, rows=steps - 1, width=hidden, **common)
    elif langevin:
        out["eps_langevin"] = fill(purpose=NoisePurpose.langevin, rows=steps, width=hidden, **common)
    return out
