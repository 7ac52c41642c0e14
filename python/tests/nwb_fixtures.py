# Owns the NWB test files: NWB files written with pynwb from nlbsynth's generator (its `simulate`,
# `attractor_points` and readout rule log r = b + w . z), a trialised MC_Maze-shaped file and a
# continuous session with its true rates saved beside it. Also runnable:
#   python3 tests/nwb_fixtures.py --out DIR [--minutes 20]
"""NWB fixtures from nlbsynth's generator (see /work/shared/tools/nlbsynth/README.md).

Both files hold: a units table (shuffled, non-contiguous ids; `obs_intervals`; a boolean
`heldout` column unless heldout=False) with Poisson spike times quantised to 30 kHz samples, and
a `behavior` processing module with `hand_vel` (TimeSeries, 1 kHz from t = 0, 2-D: a fixed
orthonormal map of the z-scored latent velocity x 100, lagged `BEHAVIOR_LAG_MS` behind it).

* trialised: trials with their own Lorenz run each (condition IC + jitter, as nlbsynth), 1 s long,
  `IT_GAP_S` apart (latent 0 between trials), columns start/stop, move_onset_time, condition,
  split ('train'/'val'/'test'); rates piecewise constant per 1 ms.
* continuous: one Lorenz trajectory over the whole session, rates piecewise constant per 20 ms
  bin (so the true expected count of every 20 ms bin of the session grid is exact), saved to
  PATH.truth.npz: `rates` [bins, neurons] (expected spikes per 20 ms bin, neurons in the order of
  `unit_ids`), `unit_ids`, `bin_ms`, `latents`. A trials table of back-to-back 1 s trials
  (start/stop, split) is written too, for use without --align.
"""

import argparse
import datetime
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

SAMPLE_HZ = 30000            # spike times are whole samples, as a real acquisition system gives them
BEHAVIOR_LAG_MS = 100        # hand_vel(t) = map . v(t - lag): behaviour follows the latent (NLB's lag)
IT_GAP_S = 0.2
LORENZ_SPEED = 2.0           # Lorenz time units per second (nlbsynth's default)


def nlbsynth_dir():
    """$NLBSYNTH, else shared/tools/nlbsynth beside the checkout, else the workplace's copy."""
    env = os.environ.get("NLBSYNTH")
    if env:
        return Path(env)
    for candidate in (Path(__file__).resolve().parents[3] / "shared/tools/nlbsynth", Path("/work/shared/tools/nlbsynth")):
        if (candidate / "make_dataset.py").exists():
            return candidate
    return Path(__file__).resolve().parents[3] / "shared/tools/nlbsynth"


def generator():
    """nlbsynth's make_dataset module (simulate, lorenz, attractor_points)."""
    path = nlbsynth_dir() / "make_dataset.py"
    if not path.exists():
        raise FileNotFoundError(f"nlbsynth not found at {path}; set NLBSYNTH")
    spec = importlib.util.spec_from_file_location("nlbsynth_make_dataset", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _readout(rng, n_neur, n_lat, bin_s, gain=0.7, rate_min_hz=2.0, rate_max_hz=20.0):
    """nlbsynth's readout: |w_n| = gain along a random direction, b_n for a mean near base_n Hz."""
    u = rng.standard_normal((n_neur, n_lat))
    w = gain * u / np.linalg.norm(u, axis=1, keepdims=True)
    base_hz = np.exp(rng.uniform(np.log(rate_min_hz), np.log(rate_max_hz), n_neur))
    b = np.log(base_hz * bin_s) - 0.5 * (w ** 2).sum(1)
    return w, b


def _spike_times(rates, t0, bin_s, rng):
    """Poisson spike times (s, 30 kHz samples) for rates [bins, neurons] in spikes per bin, bin k
    covering [t0[k], t0[k] + bin_s). Returns a list of sorted arrays, one per neuron."""
    counts = rng.poisson(rates)
    spb = int(round(bin_s * SAMPLE_HZ))
    first = np.round(np.asarray(t0) * SAMPLE_HZ).astype(np.int64)
    out = []
    for n in range(rates.shape[1]):
        c = counts[:, n]
        samples = np.repeat(first, c) + rng.integers(0, spb, size=int(c.sum()))
        out.append(np.sort(samples) / SAMPLE_HZ)
    return out


def _nwbfile(description, identifier):
    from pynwb import NWBFile
    return NWBFile(session_description=description, identifier=identifier,
                   session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))


def _add_units(nwb, spike_times, ids, heldout, t_end):
    """The units table, built from whole arrays (add_unit per unit converts element by element)."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units
    n = len(spike_times)
    st = VectorData(name="spike_times", data=np.concatenate(spike_times), description="spike times (s)")
    cols = [st, VectorIndex(name="spike_times_index", data=np.cumsum([len(s) for s in spike_times]), target=st)]
    oi = VectorData(name="obs_intervals", data=np.tile([[0.0, t_end]], (n, 1)), description="observation intervals")
    cols += [oi, VectorIndex(name="obs_intervals_index", data=np.arange(1, n + 1), target=oi)]
    if heldout is not None:
        cols.append(VectorData(name="heldout", data=np.asarray(heldout, bool), description="held-out neuron (NLB's split)"))
    nwb.units = Units(name="units", id=[int(i) for i in ids], columns=cols, description="sorted units")


def _add_behavior(nwb, hand_vel_1ms):
    from pynwb import TimeSeries
    mod = nwb.create_processing_module("behavior", "hand velocity")
    mod.add(TimeSeries(name="hand_vel", data=hand_vel_1ms.astype(np.float32), unit="mm/s", rate=1000.0,
                       starting_time=0.0, description="hand velocity (x, y)", comments="columns=[x,y]"))


def _write(nwb, path):
    from pynwb import NWBHDF5IO
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def make_trialised(path, n_trials=150, heldin=137, heldout=45, conditions=12, seed=0, heldout_column=True,
                   trials=True, units=True):
    """MC_Maze-shaped trialised NWB file. Returns a dict of what was drawn (ids, heldout mask)."""
    gen = generator()
    rng_cond, rng_trial, rng_read, rng_spk, rng_beh, rng_split, rng_ids = [
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    n_neur, trial_ms = heldin + heldout, 1000
    bin_s = 0.001
    n_sub = max(2, int(np.ceil(bin_s * LORENZ_SPEED / gen.DT_MAX)))
    dt = bin_s * LORENZ_SPEED / n_sub
    cond_ic = gen.attractor_points(conditions, rng_cond)
    cond = rng_trial.integers(0, conditions, size=n_trials)
    x0 = cond_ic[cond] + 2.0 * rng_trial.standard_normal((n_trials, 3))
    state, vel = gen.simulate(x0, trial_ms, n_sub, dt, 0.0, rng_trial)      # (trials, 1000, 3)
    z = (state - state.reshape(-1, 3).mean(0)) / state.reshape(-1, 3).std(0)
    v = vel / vel.reshape(-1, 3).std(0)
    w, b = _readout(rng_read, n_neur, 3, bin_s)
    starts = np.round(np.arange(n_trials) * (trial_ms / 1000 + IT_GAP_S), 3)
    t_end = float(starts[-1] + trial_ms / 1000 + IT_GAP_S)
    n_ms = int(round(t_end * 1000))
    # the session at 1 ms: latent 0 between trials
    z_ses = np.zeros((n_ms, 3))
    v_ses = np.zeros((n_ms, 3))
    for i, s in enumerate(starts):
        k = int(round(s * 1000))
        z_ses[k:k + trial_ms], v_ses[k:k + trial_ms] = z[i], v[i]
    rates = np.exp(z_ses @ w.T + b)
    spikes = _spike_times(rates, np.arange(n_ms) / 1000.0, bin_s, rng_spk)
    q, _ = np.linalg.qr(rng_beh.standard_normal((3, 2)))
    lag = BEHAVIOR_LAG_MS
    hand = np.zeros((n_ms, 2))
    hand[lag:] = 100.0 * v_ses[:-lag] @ q
    hand += 0.1 * hand.std(0) * rng_beh.standard_normal(hand.shape)

    ids = rng_ids.permutation(n_neur) * 3 + 100                 # shuffled, non-contiguous ids
    held = np.zeros(n_neur, bool)
    held[rng_read.permutation(n_neur)[:heldout]] = True
    nwb = _nwbfile("nlbsynth trialised session (MC_Maze-shaped)", f"nlbsynth-trials-{seed}")
    if units:
        _add_units(nwb, spikes, ids, held if heldout_column else None, t_end)
    _add_behavior(nwb, hand)
    if trials:
        nwb.add_trial_column("move_onset_time", "movement onset (s)")
        nwb.add_trial_column("condition", "condition index")
        nwb.add_trial_column("split", "NLB split")
        onset = np.round(starts + rng_trial.uniform(0.30, 0.50, n_trials), 3)
        split = np.where(rng_split.random(n_trials) < 0.75, "train", "val")
        split[-max(1, n_trials // 10):] = "test"
        for i in range(n_trials):
            nwb.add_trial(start_time=float(starts[i]), stop_time=float(starts[i] + trial_ms / 1000),
                          move_onset_time=float(onset[i]), condition=int(cond[i]), split=str(split[i]))
    _write(nwb, path)
    return {"unit_ids": ids, "heldout": held, "t_end": t_end}


def make_continuous(path, minutes=20.0, heldin=137, heldout=45, seed=1, heldout_column=False, trial_s=1.0):
    """One long Lorenz trajectory; writes PATH and PATH.truth.npz (see the module docstring)."""
    gen = generator()
    rng_ic, rng_trial, rng_read, rng_spk, rng_beh, rng_ids = [
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    n_neur, bin_ms = heldin + heldout, 20
    bin_s = bin_ms / 1000
    n_bins = int(round(minutes * 60 / bin_s))
    # two RK4 steps per 20 ms bin (dt 0.02 Lorenz units): keeps a 20-minute session to seconds
    state, vel = gen.simulate(gen.attractor_points(1, rng_ic), n_bins, 2, bin_s * LORENZ_SPEED / 2, 0.0, rng_trial)
    state, vel = state[0], vel[0]
    z = (state - state.mean(0)) / state.std(0)
    v = vel / vel.std(0)
    w, b = _readout(rng_read, n_neur, 3, bin_s)
    rates = np.exp(z @ w.T + b)                                   # expected spikes per 20 ms bin
    spikes = _spike_times(rates, np.arange(n_bins) * bin_s, bin_s, rng_spk)
    t_end = n_bins * bin_s
    q, _ = np.linalg.qr(rng_beh.standard_normal((3, 2)))
    lag_bins = BEHAVIOR_LAG_MS // bin_ms
    hand20 = np.zeros((n_bins, 2))
    hand20[lag_bins:] = 100.0 * v[:-lag_bins] @ q
    hand = np.repeat(hand20, bin_ms, axis=0)
    hand += 0.1 * hand.std(0) * rng_beh.standard_normal(hand.shape)

    ids = rng_ids.permutation(n_neur) * 5 + 7
    held = np.zeros(n_neur, bool)
    held[rng_read.permutation(n_neur)[:heldout]] = True
    nwb = _nwbfile("nlbsynth continuous session", f"nlbsynth-continuous-{seed}")
    _add_units(nwb, spikes, ids, held if heldout_column else None, t_end)
    _add_behavior(nwb, hand)
    nwb.add_trial_column("split", "NLB-style split")
    n_tr = int(t_end // trial_s)
    for i in range(n_tr):
        nwb.add_trial(start_time=i * trial_s, stop_time=(i + 1) * trial_s, split="train" if i % 4 else "val")
    _write(nwb, path)
    order = np.argsort(ids)                                      # the truth in ascending unit id order
    np.savez_compressed(str(path) + ".truth.npz", rates=rates[:, order].astype(np.float32), unit_ids=ids[order],
             bin_ms=bin_ms, latents=z.astype(np.float32), heldout=held[order])
    return {"unit_ids": ids, "heldout": held, "t_end": t_end, "rates": rates, "truth": str(path) + ".truth.npz"}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Write the NWB fixtures: trials.nwb and continuous.nwb in --out.")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=20.0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    make_trialised(Path(a.out) / "trials.nwb")
    make_continuous(Path(a.out) / "continuous.nwb", minutes=a.minutes)
    print(f"wrote {a.out}/trials.nwb, {a.out}/continuous.nwb (+ .truth.npz)")
