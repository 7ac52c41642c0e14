# Owns `python3 -m lflow_dist.export`: a session file written by `lflow-dist export` (rates, z, v,
# factors on the session's time base) into a processing module `lflow_dist` of a COPY of the input
# NWB file. The input is only read (copied byte for byte); the copy is written beside --out as a
# temp file and renamed into place at the end.
"""Write lflow-dist's inferred rates and latents into a copy of an NWB file.

Example:
  python3 -m lflow_dist.export --session run/session.h5 --nwb sub-01.nwb --out sub-01-lflow.nwb

The copy gets a processing module `lflow_dist` with TimeSeries `rates` (Hz: expected spikes per
bin / bin width in s), `z`, `v` and `factors` (a.u.), all on the same timestamps: the session time
in s of each bin's start. The rates' neuron axis follows the session file's `unit_ids`, recorded in
the `rates` comments ("columns=[id,...]", the form nlb_tools' reader parses) and in the module's
DynamicTable `rates_units` (column `unit_id`, one row per rates column). With kind "trials" the
trials' bins are concatenated in time order (trials must not overlap in time). The module's
description names the model, the checkpoint, the run directory and the data, and ends with the
model's config (JSON) after "config: ".
"""

import argparse
import os
import shutil
import sys

import numpy as np

from .files import atomic_output

PROG = "lflow-dist export"
MODULE = "lflow_dist"


class ExportError(Exception):
    def __init__(self, path, field, message):
        super().__init__(f"{PROG}: '{path}': {field}: {message}")


def _str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_session(path):
    """The session file as (arrays with a common time axis, timestamps, attrs). Raises ExportError."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ExportError(path, "file", f"not a readable HDF5 file ({e}); pass the session file "
                          "`lflow-dist export` writes") from None
    with f:
        attrs = {k: (_str(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
        for key in ("kind", "bin_ms"):
            if key not in attrs:
                raise ExportError(path, f"attrs/{key}", "missing; the session file must say its kind and bin_ms")
        kind, bin_ms = attrs["kind"], float(attrs["bin_ms"])
        if kind not in ("session", "trials"):
            raise ExportError(path, "attrs/kind", f"{kind!r} is neither 'session' nor 'trials'")
        if not bin_ms > 0:
            raise ExportError(path, "attrs/bin_ms", f"{bin_ms} is not a positive bin width")
        need = ["rates", "z", "v", "factors", "unit_ids"] + (["time"] if kind == "session" else ["trial_start_time"])
        for k in need:
            if k not in f:
                raise ExportError(path, k, f"missing; a {kind} session file holds {', '.join(need)}")
        arr = {k: f[k][()] for k in ("rates", "z", "v", "factors")}
        unit_ids = np.asarray(f["unit_ids"][()], dtype=np.int64)
        nd = 2 if kind == "session" else 3
        for k, a in arr.items():
            if a.ndim != nd:
                raise ExportError(path, k, f"has shape {a.shape}; kind {kind} needs {nd} dimensions")
        lead = {k: a.shape[:-1] for k, a in arr.items()}
        if len(set(lead.values())) != 1:
            raise ExportError(path, "rates", f"rates, z, v and factors disagree in their leading shapes: {lead}")
        if arr["rates"].shape[-1] != len(unit_ids):
            raise ExportError(path, "unit_ids", f"{len(unit_ids)} ids for {arr['rates'].shape[-1]} rates columns")
        bin_s = bin_ms / 1000.0
        if kind == "session":
            t = np.asarray(f["time"][()], dtype=np.float64)
            if t.shape != arr["rates"].shape[:1]:
                raise ExportError(path, "time", f"has shape {t.shape}, rates {arr['rates'].shape}")
            if np.any(np.diff(t) <= 0):
                raise ExportError(path, "time", "is not strictly increasing")
        else:
            t0 = np.asarray(f["trial_start_time"][()], dtype=np.float64)
            n, bins = arr["rates"].shape[:2]
            if t0.shape != (n,):
                raise ExportError(path, "trial_start_time", f"has shape {t0.shape} for {n} trials")
            order = np.argsort(t0, kind="stable")
            ts = t0[order]
            gap = np.diff(ts) - bins * bin_s
            if np.any(gap < -1e-9):
                i = int(np.flatnonzero(gap < -1e-9)[0])
                raise ExportError(path, "trial_start_time", f"trials overlap in time (the trial starting at "
                                  f"{ts[i]} s runs {bins} bins of {bin_ms:g} ms, past the next one's start "
                                  f"{ts[i + 1]} s); one time series cannot hold overlapping trials: export "
                                  "non-overlapping trials or the merged session")
            t = (ts[:, None] + np.arange(bins)[None, :] * bin_s).reshape(-1)
            arr = {k: a[order].reshape(n * bins, a.shape[-1]) for k, a in arr.items()}
    return arr, t, unit_ids, attrs


def add_module(nwb, arr, t, unit_ids, attrs, session_path):
    from hdmf.common import DynamicTable, VectorData
    from pynwb import TimeSeries
    bin_ms = float(attrs["bin_ms"])
    config = attrs.get("config", "")
    desc = (f"LangevinFlow (lflow-dist) inferred firing rates and latents, {attrs['kind']} export, "
            f"{bin_ms:g} ms bins; checkpoint: {attrs.get('checkpoint', '?')}; run_dir: {attrs.get('run_dir', '?')}; "
            f"data: {attrs.get('data', '?')}; session file: {session_path}; timestamps: session time (s) of each "
            f"bin's start; rates in Hz = expected spikes per bin / {bin_ms / 1000:g} s; rates columns follow the "
            f"units table ids in `rates_units`; config: {config}")
    mod = nwb.create_processing_module(MODULE, desc)
    ids = ",".join(str(int(i)) for i in unit_ids)
    ts_rates = TimeSeries(name="rates", data=(arr["rates"].astype(np.float64) / (bin_ms / 1000.0)).astype(np.float32),
                          unit="Hz", timestamps=t,
                          description=f"inferred firing rates (Hz): expected spikes per {bin_ms:g} ms bin divided by "
                                      f"{bin_ms / 1000:g} s; one column per unit, in `rates_units` order",
                          comments=f"neuron axis = units table ids, columns=[{ids}]")
    mod.add(ts_rates)
    for k, what in (("z", "latent position z"), ("v", "latent velocity v"),
                    ("factors", "factors (the readout's low-dimensional input)")):
        mod.add(TimeSeries(name=k, data=arr[k].astype(np.float32), unit="a.u.", timestamps=ts_rates,
                           description=f"lflow-dist {what}, one row per {bin_ms:g} ms bin"))
    mod.add(DynamicTable(name="rates_units", description="the units-table id of each column of `rates`",
                         id=list(range(len(unit_ids))),
                         columns=[VectorData(name="unit_id", data=np.asarray(unit_ids, np.int64),
                                             description="NWB units table id")]))
    return mod


def export(session, nwb_path, out, force=False):
    for p, field in ((nwb_path, "--nwb"), (session, "--session")):
        if not os.path.isfile(p):
            raise ExportError(p, field, "no such file")
    if os.path.abspath(out) == os.path.abspath(nwb_path) or (
            os.path.exists(out) and os.path.samefile(out, nwb_path)):
        raise ExportError(nwb_path, "--out", "is the input file; export never modifies the input: pass another --out")
    if os.path.exists(out) and not force:
        raise ExportError(out, "--out", "exists; pass --force to replace it, or another --out")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ExportError(out, "--out", f"the directory {out_dir} does not exist; create it first")
    arr, t, unit_ids, attrs = read_session(session)

    from pynwb import NWBHDF5IO
    with atomic_output(out, ".export-") as tmp:
        shutil.copyfile(nwb_path, tmp)
        try:
            io = NWBHDF5IO(tmp, "a")
            nwb = io.read()
        except Exception as e:  # noqa: BLE001
            raise ExportError(nwb_path, "file", f"not a readable NWB file ({type(e).__name__}: {str(e)[:200]})") \
                from None
        try:
            if MODULE in nwb.processing:
                raise ExportError(nwb_path, f"processing/{MODULE}", "already present (an exported file?); export "
                                  "into a copy of the original recording")
            if nwb.units is not None and len(nwb.units):
                known = set(np.asarray(nwb.units.id[:], dtype=np.int64).tolist())
                missing = [int(i) for i in unit_ids if int(i) not in known]
                if missing:
                    raise ExportError(session, "unit_ids", f"{len(missing)} ids are not in the NWB file's units table "
                                      f"(first {missing[:5]}); was the model trained on this file?")
            add_module(nwb, arr, t, unit_ids, attrs, session)
            io.write(nwb)
        finally:
            io.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m lflow_dist.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--session", required=True, metavar="SESSION.h5",
                   help="the session file `lflow-dist export` writes (rates, z, v, factors, time base), "
                        "e.g. --session run/session.h5")
    p.add_argument("--nwb", required=True, metavar="FILE.nwb",
                   help="the recording the model was trained on; only read, e.g. --nwb sub-01.nwb")
    p.add_argument("--out", required=True, metavar="FILE-lflow.nwb",
                   help="the copy to write, e.g. --out sub-01-lflow.nwb (never the input)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    a = p.parse_args(argv)
    try:
        export(a.session, a.nwb, a.out, a.force)
    except ExportError as e:
        print(str(e), file=sys.stderr)
        sys.exit(2)
    print(f"wrote {a.out}: processing module '{MODULE}' (rates, z, v, factors, rates_units)")


if __name__ == "__main__":
    main()
