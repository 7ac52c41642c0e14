# Owns `python3 -m lflow_dist.prepare`: an NWB file (units table, optional trials table and
# `behavior` module) to the spikes file lflow-dist trains on, through pynwb and nlb_tools'
# NWBDataset (load, resample, make_trial_data). It checks the input, normalises what nlb_tools'
# reader cannot take directly, chops continuous sessions, and writes atomically (temp + rename).
"""Prepare an NWB file for lflow-dist: bin the units' spikes, cut trials or chop the session.

Examples:
  python3 -m lflow_dist.prepare --nwb sub-01.nwb --bin-ms 20 --align move_onset_time \\
      --window -250,450 --out maze.h5
  python3 -m lflow_dist.prepare --nwb session.nwb --bin-ms 20 --chop-ms 1000 --overlap-ms 200 \\
      --held-out-fraction 0.25 --seed 0 --out session.h5

The spikes file (HDF5): `spikes` float32 [trials, bins, neurons] (counts, NaN = not observed),
`unit_ids` int64 [neurons] (units-table ids in the file's neuron order: ascending id, as
nlb_tools' reader orders them), `trial_start_time` float64 [trials] (session time in s of each
trial's or window's first bin), optional `behavior` float32 [trials, bins, B], `condition` int32
[trials], `heldout` uint8 [neurons] (else attrs held_out_fraction, held_out_seed), and with
--align `trial_id` int64 [trials] (the trials table's ids). Attrs: kind ("trials"/"session"),
bin_ms, dataset_name, source; kind "session" adds `window_start_bin` int64 [windows] and attrs
session_bins, session_start_time, window_bins, overlap_bins.
"""

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .files import atomic_output

PROG = "lflow-dist prepare"
ALIGN_COLUMN = "lflow_align_time"     # the aligned column's name in the normalised file (nlb_tools
                                      # treats only `*_time` columns as times)


class PrepareError(Exception):
    """A bad input: (file, field, what is wrong; what to do)."""

    def __init__(self, path, field, message):
        super().__init__(f"{PROG}: '{path}': {field}: {message}")


def _fail(err):
    print(str(err), file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------- reading the NWB file

def _behavior_series(nwb, path, name):
    """(name, TimeSeries) picked from the `behavior` processing module, or None."""
    from pynwb import TimeSeries
    from pynwb.core import MultiContainerInterface
    if "behavior" not in nwb.processing:
        if name:
            raise PrepareError(path, "processing/behavior", "the file has no `behavior` processing module; "
                               "drop --behavior")
        return None
    found = {}
    for child in nwb.processing["behavior"].data_interfaces.values():
        if isinstance(child, TimeSeries):
            found[child.name] = child
        elif isinstance(child, MultiContainerInterface):
            for ts in child.children:
                if isinstance(ts, TimeSeries):
                    found[ts.name] = ts
                    found.setdefault(f"{child.name}_{ts.name}", ts)
    if name:
        if name not in found:
            raise PrepareError(path, f"processing/behavior/{name}", "no such TimeSeries; the module has: "
                               + (", ".join(sorted(found)) or "none"))
        return name, found[name]
    if "hand_vel" in found:
        return "hand_vel", found["hand_vel"]
    distinct = {id(v): k for k, v in found.items()}
    if len(distinct) == 1:
        k = next(iter(distinct.values()))
        return k, found[k]
    if found:
        print(f"{PROG}: '{path}': processing/behavior: several TimeSeries ({', '.join(sorted(found))}); "
              "writing no behaviour (pick one with --behavior NAME)", file=sys.stderr)
    return None


def _on_ms_grid(ts, path, label):
    """The TimeSeries' samples as (data [S, B] on the 1 ms grid from 0, first sample index):
    nlb_tools' reader drops a series whose timestamps are not whole ms, so others are linearly
    interpolated onto the ms grid within their time range."""
    raw = np.asarray(ts.data[()])
    data = raw.astype(np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] < 2:
        raise PrepareError(path, label, f"behaviour must be [time] or [time, channels] with >= 2 samples, "
                           f"got shape {data.shape}; pick another series with --behavior")
    if ts.timestamps is not None:
        t = np.asarray(ts.timestamps[()], dtype=np.float64)
    else:
        t = ts.starting_time + np.arange(data.shape[0]) / ts.rate
    ms = t * 1000.0
    if np.all(np.abs(ms - np.round(ms)) < 1e-6) and np.all(np.diff(np.round(ms)) == 1):
        return raw.reshape(data.shape), int(round(ms[0]))     # its own dtype: nlb_tools decimates in it
    first, last = int(math.ceil(ms[0] - 1e-6)), int(math.floor(ms[-1] + 1e-6))
    grid = np.arange(first, last + 1, dtype=np.float64)
    return np.stack([np.interp(grid, ms, data[:, c]) for c in range(data.shape[1])], 1), first


def _normalised(path, args):
    """Read FILE with pynwb and check it; return (in-memory NWBFile for nlb_tools, info dict).

    The in-memory file holds only what nlb_tools' NWBDataset.load needs and can take: the units'
    spike times and obs_intervals (made [[0, end]] when missing; `end` = the last spike's ms + 1,
    or the last trial's stop), no `heldout` column (loaded with split_heldout=False; the mask is
    kept here), a trials table (start/stop, the aligned column as `lflow_align_time`; one trial
    over the whole session when the file has none), and the chosen behaviour series on the 1 ms
    grid. Nothing else of the file (acquisition, raw data) is loaded."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.misc import Units
    import datetime

    try:
        io = NWBHDF5IO(str(path), "r")
        nwb = io.read()
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input
        raise PrepareError(path, "file", f"not a readable NWB file ({type(e).__name__}: {str(e)[:200]}); "
                           "pass an NWB 2 file") from None
    try:
        units = nwb.units
        if units is None or len(units) == 0:
            raise PrepareError(path, "units", "the file has no units table (or it is empty); prepare needs sorted "
                               "units' spike times (an NWB /units table)")
        if "spike_times" not in units.colnames:
            raise PrepareError(path, "units/spike_times", "the units table has no spike_times column; add the "
                               "units' spike times")
        ids = np.asarray(units.id[:], dtype=np.int64)
        st_col = units["spike_times"]
        spikes = [np.asarray(st_col[i], dtype=np.float64) for i in range(len(ids))]
        n_spikes = sum(len(s) for s in spikes)
        if n_spikes == 0:
            raise PrepareError(path, "units/spike_times", f"the units table has {len(ids)} units and no spikes; "
                               "prepare needs spike times")
        lo = min(s.min() for s in spikes if len(s))
        if lo < 0:
            raise PrepareError(path, "units/spike_times", f"negative spike times (first {lo} s); nlb_tools' reader "
                               "bins from t = 0: shift the session so that it starts at 0")
        last_spike = max(s.max() for s in spikes if len(s))
        heldout = None
        if "heldout" in units.colnames:
            h = np.asarray(units["heldout"][:])
            if h.dtype != bool:
                raise PrepareError(path, "units/heldout", f"the heldout column is {h.dtype}, not boolean; make it "
                                   "boolean or remove it (then --held-out-fraction draws the split)")
            heldout = dict(zip(ids.tolist(), h.tolist()))
        obs = None
        if "obs_intervals" in units.colnames:
            obs = [np.asarray(units["obs_intervals"][i], dtype=np.float64).reshape(-1, 2) for i in range(len(ids))]

        trials = nwb.trials
        tinfo = None
        if args.align is not None:
            if trials is None or len(trials) == 0:
                raise PrepareError(path, "trials", f"--align {args.align} needs a trials table and the file has "
                                   "none; drop --align to chop the whole session")
            cols = [c for c in trials.colnames if c not in ("start_time", "stop_time")]
            if args.align not in trials.colnames:
                raise PrepareError(path, f"trials/{args.align}", "no such column in the trials table; its columns "
                                   f"are: {', '.join(['start_time', 'stop_time'] + cols)}")
            tinfo = {"id": np.asarray(trials.id[:], dtype=np.int64),
                     "start": np.asarray(trials["start_time"][:], dtype=np.float64),
                     "stop": np.asarray(trials["stop_time"][:], dtype=np.float64)}
            try:
                tinfo["align"] = np.asarray(trials[args.align][:], dtype=np.float64)
            except (TypeError, ValueError):
                raise PrepareError(path, f"trials/{args.align}", "the column is not numeric (times in s); align "
                                   "to a time column") from None
            for cname in ("condition", "condition_id"):
                if cname in trials.colnames:
                    tinfo["condition"] = (cname, np.asarray(trials[cname][:]))
                    break
        elif trials is not None and len(trials):
            tinfo = {"stop": np.asarray(trials["stop_time"][:], dtype=np.float64)}

        beh = _behavior_series(nwb, path, args.behavior)
        beh_grid = None
        if beh is not None:
            beh_grid = _on_ms_grid(beh[1], path, f"processing/behavior/{beh[0]}")

        end = (math.floor(last_spike * 1000.0) + 1) / 1000.0
        if obs is None:
            if tinfo is not None:
                end = max(end, float(np.max(tinfo["stop"])))
            obs = [np.array([[0.0, end]])] * len(ids)
        else:
            obs_end = max(float(o[-1, 1]) for o in obs if len(o))
            if last_spike * 1000.0 >= round(obs_end * 1000.0):
                raise PrepareError(path, "units/obs_intervals", f"spikes at {last_spike} s after the last observation "
                                   f"interval ends ({obs_end} s); fix obs_intervals or drop the column")
            end = obs_end

        # the normalised in-memory file for nlb_tools
        mem = NWBFile(session_description="lflow-dist prepare: normalised", identifier="lflow-dist-prepare",
                      session_start_time=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
        stv = VectorData(name="spike_times", data=np.concatenate(spikes), description="spike times")
        oiv = VectorData(name="obs_intervals", data=np.concatenate(obs), description="observation intervals")
        mem.units = Units(name="units", id=ids.tolist(), description="units", columns=[
            stv, VectorIndex(name="spike_times_index", data=np.cumsum([len(s) for s in spikes]), target=stv),
            oiv, VectorIndex(name="obs_intervals_index", data=np.cumsum([len(o) for o in obs]), target=oiv)])
        if args.align is not None:
            mem.add_trial_column(ALIGN_COLUMN, f"trials/{args.align}")
            for s, e, a in zip(tinfo["start"], tinfo["stop"], tinfo["align"]):
                mem.add_trial(start_time=float(s), stop_time=float(e), **{ALIGN_COLUMN: float(a)})
        else:
            mem.add_trial(start_time=0.0, stop_time=float(end))
        if beh_grid is not None:
            data, first_ms = beh_grid
            cname = "behavior"
            m = mem.create_processing_module("behavior", "behaviour")
            m.add(TimeSeries(name=cname, data=data, unit="a.u.", rate=1000.0, starting_time=first_ms / 1000.0,
                             description=beh[0]))
        info = {"ids": ids, "heldout": heldout, "end": end, "trials": tinfo,
                "behavior": None if beh is None else beh[0]}
        return mem, info
    finally:
        io.close()


def _dataset(mem, bin_ms):
    """nlb_tools' NWBDataset of the normalised file, resampled to bin_ms."""
    import logging
    logging.getLogger("nlb_tools").setLevel(logging.ERROR)
    from nlb_tools.nwb_interface import NWBDataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = NWBDataset(mem, split_heldout=False)
        if bin_ms != ds.bin_width:
            ds.resample(bin_ms)
    return ds


# ---------------------------------------------------------------- trials and chops

def chop_starts(session_bins, window_bins, overlap_bins):
    """Window starts: 0, step, 2 step, ... with the last window moved to end at the last bin."""
    step = window_bins - overlap_bins
    if session_bins < window_bins:
        raise ValueError("session shorter than one window")
    starts = list(range(0, session_bins - window_bins + 1, step))
    if starts[-1] + window_bins < session_bins:
        starts.append(session_bins - window_bins)
    return np.asarray(starts, dtype=np.int64)


def _trials(path, args, mem, info, start_ms, end_ms):
    tinfo = info["trials"]
    keep = ~np.isnan(tinfo["align"])
    if not keep.any():
        raise PrepareError(path, f"trials/{args.align}", "every value is NaN; align to a column that has times")
    if (~keep).any():
        print(f"{PROG}: '{path}': trials/{args.align}: {int((~keep).sum())} trials have no value (NaN) and are "
              "left out", file=sys.stderr)
    w0 = tinfo["align"] + start_ms / 1000.0
    w1 = tinfo["align"] + end_ms / 1000.0
    bad = keep & ((w0 < tinfo["start"] - 1e-9) | (w1 > tinfo["stop"] + 1e-9))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PrepareError(path, f"trials/{args.align}", f"the window [{start_ms}, {end_ms}] ms around it is not "
                           f"inside trial {int(tinfo['id'][i])}'s [start_time, stop_time] = [{tinfo['start'][i]}, "
                           f"{tinfo['stop'][i]}] s ({int(bad.sum())} trials); shorten --window")
    ds = _dataset(mem, args.bin_ms)
    n_bins = (end_ms - start_ms) // args.bin_ms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        td = ds.make_trial_data(align_field=ALIGN_COLUMN, align_range=(start_ms, end_ms), allow_overlap=True,
                                allow_nans=True)
    groups = list(td.groupby("trial_id", sort=False))
    tid_rows = np.asarray([t for t, _ in groups], dtype=np.int64)
    lengths = {len(g) for _, g in groups}
    if lengths != {n_bins}:
        raise PrepareError(path, f"trials/{args.align}", f"trials came out {sorted(lengths)} bins long, expected "
                           f"{n_bins}; check that the window lies inside the recording")
    spikes = np.stack([g["spikes"].to_numpy() for _, g in groups]).astype(np.float32)
    t0 = np.asarray([g["clock_time"].iloc[0].total_seconds() for _, g in groups], dtype=np.float64)
    out = {"spikes": spikes, "trial_start_time": t0}
    # NWBDataset's trial_id is the row number of the (normalised) trials table
    out["trial_id"] = tinfo["id"][tid_rows]
    if "condition" in tinfo:
        cname, vals = tinfo["condition"]
        vals = vals[tid_rows]
        try:
            out["condition"] = vals.astype(np.int32)
        except (TypeError, ValueError):
            labels, codes = np.unique(vals.astype(str), return_inverse=True)
            out["condition"] = codes.astype(np.int32)
            out["condition_labels"] = json.dumps(labels.tolist())
    if info["behavior"] is not None:
        lag = args.behavior_lag_ms
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bd = ds.make_trial_data(align_field=ALIGN_COLUMN, align_range=(start_ms + lag, end_ms + lag),
                                    allow_overlap=True, allow_nans=True, ignored_trials=~np.isin(
                                        np.arange(len(tinfo["align"])), tid_rows))
        bg = {t: g for t, g in bd.groupby("trial_id", sort=False)}
        out["behavior"] = np.stack([bg[t]["behavior"].to_numpy() for t in tid_rows]).astype(np.float32)
    return ds, out


def _session(path, args, mem, info):
    ds = _dataset(mem, args.bin_ms)
    # complete bins only: a trailing partial bin (nlb_tools sums it as a short bin) is dropped
    n_ms = int(round(info["end"] * 1000.0))
    session_bins = n_ms // args.bin_ms
    sp = ds.data["spikes"].to_numpy()[:session_bins].astype(np.float32)
    wb, ob = args.chop_ms // args.bin_ms, args.overlap_ms // args.bin_ms
    if session_bins < wb:
        raise PrepareError(path, "units/spike_times", f"the session is {session_bins * args.bin_ms} ms long, "
                           f"shorter than one {args.chop_ms} ms window; use a shorter --chop-ms")
    starts = chop_starts(session_bins, wb, ob)
    idx = starts[:, None] + np.arange(wb)[None, :]
    t = ds.data.index.total_seconds().to_numpy()
    out = {"spikes": sp[idx], "trial_start_time": t[starts].astype(np.float64), "window_start_bin": starts,
           "session": {"session_bins": session_bins, "session_start_time": float(t[0]), "window_bins": wb,
                       "overlap_bins": ob}}
    if info["behavior"] is not None:
        beh = ds.data["behavior"].to_numpy().astype(np.float32)
        lag = args.behavior_lag_ms // args.bin_ms
        full = np.full((session_bins, beh.shape[1]), np.nan, np.float32)
        n = max(0, min(session_bins, beh.shape[0] - lag))
        full[:n] = beh[lag:lag + n]
        out["behavior"] = full[idx]
    return ds, out


# ---------------------------------------------------------------- main

def _ms(value, flag, path):
    try:
        v = float(value)
    except ValueError:
        raise PrepareError(path, flag, f"{value!r} is not a number of ms; e.g. {flag} 20") from None
    if v != int(v):
        raise PrepareError(path, flag, f"{value} ms is not a whole number of ms (nlb_tools' reader bins at 1 ms); "
                           "use whole ms")
    return int(v)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m lflow_dist.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nwb", required=True, metavar="FILE.nwb",
                   help="the NWB file (read only); needs a units table with spike times, e.g. --nwb sub-01.nwb")
    p.add_argument("--bin-ms", required=True, metavar="MS",
                   help="bin width in whole ms, e.g. --bin-ms 20 (nlb_tools bins at 1 ms, then resamples)")
    p.add_argument("--align", metavar="FIELD",
                   help="cut trials aligned to this trials-table column (times in s), e.g. --align move_onset_time; "
                        "without it the whole session is chopped into overlapping windows")
    p.add_argument("--window", metavar="START_MS,END_MS",
                   help="with --align: the window around the aligned time in ms, e.g. --window -250,450 "
                        "(a multiple of --bin-ms long and inside every trial's [start_time, stop_time])")
    p.add_argument("--chop-ms", default="1000", metavar="MS",
                   help="without --align: window length in ms, a multiple of --bin-ms (default 1000)")
    p.add_argument("--overlap-ms", default="200", metavar="MS",
                   help="without --align: overlap of consecutive windows in ms, a multiple of --bin-ms, less than "
                        "--chop-ms (default 200); the last window is moved to end at the session's last bin")
    p.add_argument("--behavior", metavar="NAME",
                   help="the TimeSeries of the `behavior` processing module to write as `behavior`, e.g. "
                        "--behavior hand_vel (default: hand_vel if present, else the only one)")
    p.add_argument("--behavior-lag-ms", default="0", metavar="MS",
                   help="behaviour is taken LAG ms after the spikes' bins, as NLB lags it (mc_maze: 100); "
                        "a multiple of --bin-ms (default 0)")
    p.add_argument("--held-out-fraction", type=float, default=0.25, metavar="F",
                   help="without a boolean units `heldout` column: the fraction of neurons the loader holds "
                        "out (a seeded draw made by lflow-dist, not here), e.g. --held-out-fraction 0.25 (default)")
    p.add_argument("--seed", type=int, default=0, help="seed of that held-out draw (default 0)")
    p.add_argument("--out", required=True, metavar="DATA.h5",
                   help="the spikes file to write (written to a temp file beside it, then renamed)")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1):          # "--window -250,450": a value that starts with '-'
        if argv[i] == "--window" and argv[i + 1].startswith("-"):
            argv[i:i + 2] = [f"--window={argv[i + 1]}"]
            break
    return p.parse_args(argv)


def prepare(args):
    """Everything in memory; returns (arrays dict, attrs dict). Raises PrepareError."""
    path = args.nwb
    if not os.path.isfile(path):
        raise PrepareError(path, "file", "no such file; pass an existing .nwb file with --nwb")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise PrepareError(args.out, "--out", f"the directory {out_dir} does not exist; create it first")
    if os.path.abspath(args.out) == os.path.abspath(path):
        raise PrepareError(path, "--out", "is the input file; write the spikes file elsewhere")
    args.bin_ms = _ms(args.bin_ms, "--bin-ms", path)
    if args.bin_ms <= 0:
        raise PrepareError(path, "--bin-ms", "must be positive; e.g. --bin-ms 20")
    args.behavior_lag_ms = _ms(args.behavior_lag_ms, "--behavior-lag-ms", path)
    if args.behavior_lag_ms % args.bin_ms:
        raise PrepareError(path, "--behavior-lag-ms", f"{args.behavior_lag_ms} ms is not a multiple of the "
                           f"{args.bin_ms} ms bin; use a multiple")
    if not 0.0 <= args.held_out_fraction < 1.0:
        raise PrepareError(path, "--held-out-fraction", f"{args.held_out_fraction} is not in [0, 1); e.g. 0.25")
    start_ms = end_ms = None
    if args.align is not None:
        if args.window is None:
            raise PrepareError(path, "--window", "--align needs --window START_MS,END_MS, e.g. --window -250,450")
        parts = args.window.split(",")
        if len(parts) != 2:
            raise PrepareError(path, "--window", f"{args.window!r} is not START_MS,END_MS; e.g. --window -250,450")
        start_ms, end_ms = (_ms(x, "--window", path) for x in parts)
        if end_ms <= start_ms:
            raise PrepareError(path, "--window", f"END ({end_ms}) must be after START ({start_ms})")
        if (end_ms - start_ms) % args.bin_ms:
            raise PrepareError(path, "--window", f"the window is {end_ms - start_ms} ms long, not a multiple of the "
                               f"{args.bin_ms} ms bin; make its length a multiple of --bin-ms")
    else:
        if args.window is not None:
            raise PrepareError(path, "--window", "needs --align FIELD (without it the session is chopped: "
                               "--chop-ms/--overlap-ms)")
        args.chop_ms = _ms(args.chop_ms, "--chop-ms", path)
        args.overlap_ms = _ms(args.overlap_ms, "--overlap-ms", path)
        for flag, v in (("--chop-ms", args.chop_ms), ("--overlap-ms", args.overlap_ms)):
            if v % args.bin_ms:
                raise PrepareError(path, flag, f"{v} ms is not a multiple of the {args.bin_ms} ms bin; use a multiple "
                                   "of --bin-ms")
        if not 0 <= args.overlap_ms < args.chop_ms:
            raise PrepareError(path, "--overlap-ms", f"{args.overlap_ms} ms must be >= 0 and less than --chop-ms "
                               f"({args.chop_ms} ms)")

    mem, info = _normalised(path, args)
    if args.align is not None:
        ds, out = _trials(path, args, mem, info, start_ms, end_ms)
    else:
        ds, out = _session(path, args, mem, info)
    # neuron order: nlb_tools' column order (ascending unit id)
    col_ids = np.asarray(ds.data["spikes"].columns, dtype=np.int64)
    attrs = {"kind": "trials" if args.align is not None else "session", "bin_ms": float(args.bin_ms),
             "dataset_name": Path(path).stem, "source": str(path)}
    if args.align is not None:
        attrs.update({"align": args.align, "window_ms": [start_ms, end_ms]})
    if info["behavior"] is not None:
        attrs.update({"behavior_name": info["behavior"], "behavior_lag_ms": args.behavior_lag_ms})
    out["unit_ids"] = col_ids
    if info["heldout"] is not None:
        out["heldout"] = np.asarray([info["heldout"][int(i)] for i in col_ids], dtype=np.uint8)
    else:
        attrs["held_out_fraction"] = float(args.held_out_fraction)
        attrs["held_out_seed"] = np.int64(args.seed)
    sess = out.pop("session", None)
    if sess is not None:
        attrs.update({k: (np.float64(v) if k == "session_start_time" else np.int64(v)) for k, v in sess.items()})
    if "condition_labels" in out:
        attrs["condition_labels"] = out.pop("condition_labels")
    return out, attrs


def write(out_path, arrays, attrs):
    """Write to a temp file beside out_path, then rename it into place."""
    import h5py
    with atomic_output(out_path, ".prepare-") as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
            for k, v in attrs.items():
                f.attrs[k] = v


def main(argv=None):
    args = parse_args(argv)
    try:
        arrays, attrs = prepare(args)
    except PrepareError as e:
        _fail(e)
    write(args.out, arrays, attrs)
    s = arrays["spikes"].shape
    held = ("heldout column: %d held out" % int(arrays["heldout"].sum()) if "heldout" in arrays
            else f"held-out fraction {attrs['held_out_fraction']} (seed {attrs['held_out_seed']}, drawn by lflow-dist)")
    print(f"wrote {args.out}: {attrs['kind']}, {s[0]} x {s[1]} bins of {attrs['bin_ms']:g} ms x {s[2]} neurons; "
          f"{held}" + (f"; behaviour {attrs['behavior_name']} ({arrays['behavior'].shape[2]})"
                       if "behavior" in arrays else ""))


if __name__ == "__main__":
    main()
