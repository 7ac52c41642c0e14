"""The oscillations a trained LangevinFlow's potential holds, and which of them its latent path uses.

Reads a run's best.h5 (the force matrix A of the coupled-oscillator potential, through the
package's model) and latents.h5 (the validation trials' mean path z), and prints, per mode of A
(its eigenvectors): the stiffness lambda, the angular frequency sqrt(lambda / mass) in model time,
the rotation per step of the chosen integrator (explicit: dt * omega; midpoint: 2 atan(dt omega / 2)),
that rotation as a frequency in Hz given the bin width, and the share of z's within-trial variance
the mode carries. The dominant frequencies are those of the modes that carry most of it.

    python3 python/examples/potential_frequencies.py --run-dir RUN [--bin-ms 20] [--top 5] [--json]
"""
import argparse
import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lflow_dist.model import LangevinFlow  # noqa: E402


def modes(run_dir, bin_ms):
    model = LangevinFlow.from_checkpoint(str(Path(run_dir) / "best.h5"), dtype=torch.float64)
    c = model.config
    a = model.potential.force_matrix().detach().numpy()
    lam, vec = np.linalg.eigh((a + a.T) / 2)
    with h5py.File(Path(run_dir) / "latents.h5", "r") as f:
        z = f["valid/z"][()]                                   # (trials, steps, H)
    within = z - z.mean(axis=1, keepdims=True)                 # (trials, steps, H): motion within trials
    projected = within.reshape(-1, z.shape[-1]) @ vec
    share = projected.var(axis=0) / max(projected.var(axis=0).sum(), 1e-300)
    omega = np.sqrt(np.clip(lam, 0, None) / c.mass)
    midpoint = getattr(c, "integrator", "explicit") == "midpoint"
    per_step = 2 * np.arctan(c.dt * omega / 2) if midpoint else c.dt * omega
    hz = per_step / (2 * math.pi * bin_ms / 1000)
    return c, [dict(stiffness=float(l), omega=float(o), radians_per_step=float(r), hz=float(h), share=float(s))
               for l, o, r, h, s in zip(lam, omega, per_step, hz, share)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="a finished train run (best.h5, latents.h5)")
    p.add_argument("--bin-ms", type=float, default=20.0, help="bin width, for Hz (default 20)")
    p.add_argument("--top", type=int, default=5, help="modes to list, by their share of z's motion")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    a = p.parse_args(argv)
    c, ms = modes(a.run_dir, a.bin_ms)
    ranked = sorted(ms, key=lambda m: -m["share"])[:a.top]
    weighted = sum(m["hz"] * m["share"] for m in ms)
    stiff = [m for m in ms if m["stiffness"] > 1e-6]
    summary = dict(stiff_modes=len(stiff), modes=len(ms), stiff_share=sum(m["share"] for m in stiff),
                   hz_range=[min((m["hz"] for m in stiff), default=0.0), max((m["hz"] for m in stiff), default=0.0)])
    if a.json:
        print(json.dumps(dict(dt=c.dt, damping=c.damping, mass=c.mass, weighted_hz=weighted, **summary, top=ranked)))
        return
    print(f"dt {c.dt}, damping {c.damping}, mass {c.mass}: motion-weighted frequency {weighted:.2f} Hz")
    print(f"{summary['stiff_modes']} of {summary['modes']} modes oscillate (stiffness > 1e-6), from "
          f"{summary['hz_range'][0]:.2f} to {summary['hz_range'][1]:.2f} Hz, carrying {summary['stiff_share']:.2f} of z's motion")
    print(f"{'share':>7} {'stiffness':>10} {'rad/step':>9} {'Hz':>7}")
    for m in ranked:
        print(f"{m['share']:7.3f} {m['stiffness']:10.4f} {m['radians_per_step']:9.4f} {m['hz']:7.2f}")


if __name__ == "__main__":
    main()
