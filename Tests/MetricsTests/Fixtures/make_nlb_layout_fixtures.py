"""Generates NLB fixtures in exactly the on-disk layout nlb_tools itself writes.

Unlike make_fixtures.py (which writes with h5py directly), every .h5 here is written by
nlb_tools' own writer, `nlb_tools.make_tensors.save_to_h5` (gzip, numbers narrowed to
float32/int32, ragged object arrays as HDF5 variable-length arrays, bools as h5py's
FALSE/TRUE int8 enum), and every expected score comes from `nlb_tools.evaluation.evaluate`.

Written against nlb_tools 0.0.4 (installed with --no-deps), numpy 1.26, pandas, h5py 3.x,
scikit-learn, scipy.  Run from any directory (outputs go next to this script):

    pip install --no-deps nlb-tools==0.0.4
    pip install "numpy<2" pandas scipy h5py scikit-learn pynwb
    python3 make_nlb_layout_fixtures.py

Everything is deterministic (fixed seeds; nlb_tools' own jitter sampler is seeded the way
make_eval_target_tensors seeds it).  Outputs:

  nlbmaze_targets.h5 / nlbmaze_submission.h5 / nlbmaze_expected.json
      group 'mc_maze_20': the keys make_eval_target_tensors(dataset_name='mc_maze',
      include_psth=True) writes at 20 ms (35 obs bins, 10 forward bins); mc_maze has no
      decode masks and no jitter.  eval_cond_idx/train_cond_idx are ragged (vlen int32);
      the last condition has train trials but no eval trial (an empty vlen element).
  nlbrsg_targets.h5 / nlbrsg_submission.h5 / nlbrsg_expected.json
      group 'dmfc_rsg_20': set–go spikes front-padded with NaN to 75 bins and shifted by
      nlb_tools' jitter, eval_jitter/train_jitter (int32), 5-column trial behaviour
      (is_eye, theta, is_short, ts, tp; NaN rows for outlier trials), per-condition PSTHs
      NaN-padded at the front, ragged cond_idx (outliers in no condition).
  nlbinput.h5
      the union of make_train_input_tensors(include_behavior=True,
      include_forward_pred=True) and make_eval_input_tensors(trial_split='val') for the
      mc_maze case: flat datasets, no groups (same trials as nlbmaze_*).
  nlbdecodemask.h5
      group 'area2_bump_20' with only train_decode_mask/eval_decode_mask: the sole boolean
      arrays nlb_tools ever emits (area2_bump's decode masks), to pin the bool encoding.
  NLB_LAYOUTS.md
      the HDF5 types of every key, probe results for what save_to_h5 can/cannot write,
      and `h5dump -H` of each fixture (needs h5dump, apt-get install hdf5-tools).
"""
import importlib.metadata
import json
import os
import subprocess
import types

import h5py
import numpy as np
import pandas as pd

from nlb_tools.evaluation import bits_per_spike, eval_psth, evaluate, fit_and_eval_decoder, speed_tp_correlation
from nlb_tools.make_tensors import PARAMS, _prep_jitter, save_to_h5

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_MS = 20


def path(name):
    return os.path.join(HERE, name)


def save(data_dict, name):
    """save_to_h5 opens with mode 'a': remove the old file so a rerun is a fresh write."""
    p = path(name)
    if os.path.exists(p):
        os.remove(p)
    save_to_h5(data_dict, p, overwrite=True)
    return p


def quantize(rates, step=2.0 ** -8):
    """Rates rounded to a binary grid (keeps the gzip'd files small); strictly positive."""
    return np.maximum(np.round(rates / step) * step, step).astype(np.float32)


def cond_object_array(index_lists):
    """As _make_psth returns them: np.array(list of int64 index arrays, dtype=object)."""
    arr = np.empty(len(index_lists), dtype=object)     # (np.array(..., dtype=object) on equal
    for i, ix in enumerate(index_lists):               #  lengths would give a 2-D object array,
        arr[i] = np.asarray(ix, dtype=np.int64)        #  which save_to_h5 cannot write)
    assert len({len(ix) for ix in index_lists}) > 1, "nlb_tools only manages ragged cond_idx"
    return arr


def flat_metrics(result, group):
    (entry,) = [r[f"{group}_split"] for r in result if f"{group}_split" in r]
    return {k: float(v) for k, v in entry.items()}


def write_expected(name, group, result, single):
    expected = {
        "nlb_tools": importlib.metadata.version("nlb-tools"),
        "group": group,
        "evaluate": flat_metrics(result, group),
        "single": {k: float(v) for k, v in single.items()},
    }
    with open(path(name), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    return expected


# --------------------------------------------------------------------------------------
# 1. mc_maze at 20 ms
# --------------------------------------------------------------------------------------
def make_maze(seed=11):
    rng = np.random.default_rng(seed)
    group = "mc_maze_20"
    n_in, n_ho = 20, 8
    n = n_in + n_ho
    T = (450 - -250) // BIN_MS                                # 35 bins, move onset at bin 12.5
    F = PARAMS["mc_maze"]["fp_len"] // BIN_MS                 # 10 forward bins
    train_sizes = [9, 8, 7, 6, 5, 5]                          # 40 train trials
    eval_sizes = [6, 5, 4, 3, 6, 0]                           # 24 eval trials, last cond none
    n_cond = len(train_sizes)
    train_cond = rng.permutation(np.repeat(np.arange(n_cond), train_sizes))
    eval_cond = rng.permutation(np.repeat(np.arange(n_cond), eval_sizes))

    # Tuning: log-rate = log(base) + gain * (velocity . preferred direction) + onset transient
    # + a direction-tuned hold (posture) term after the reach
    base = rng.uniform(0.08, 0.6, n)                          # spikes per 20 ms bin (4–30 Hz)
    pref = rng.uniform(0, 2 * np.pi, n)
    gain = rng.uniform(1.0, 2.0, n)
    trans = rng.uniform(-0.5, 0.8, n)
    hold_pref = rng.uniform(0, 2 * np.pi, n)                  # posture tuning after the reach
    theta = 2 * np.pi * np.arange(n_cond) / n_cond + 0.3      # reach direction of each condition

    def trial(c):
        # times of obs + forward bins relative to move onset (bin centres), ms
        t = -250 + BIN_MS * (np.arange(T + F) + 0.5)
        amp = 1.0 + 0.15 * rng.standard_normal()
        shift = 15 * rng.standard_normal()
        speed = amp * np.exp(-(((t + 100 - 180 - shift) / 110) ** 2))   # behaviour lags by 100 ms
        vel = np.stack([np.cos(theta[c]), np.sin(theta[c])], -1) * speed[:, None]
        drive = vel @ np.stack([np.cos(pref), np.sin(pref)])             # (T+F, n)
        onset = np.exp(-(((t - 30 - shift) / 120) ** 2))[:, None]
        hold = (1 / (1 + np.exp(-(t - 250 - shift) / 60)))[:, None] * 0.7 * np.cos(theta[c] - hold_pref)
        rates = base * np.exp(gain * drive + trans * onset + hold)
        behavior = 250.0 * vel[:T] + 8.0 * rng.standard_normal((T, 2))   # hand velocity, mm/s
        return rates, behavior

    tr = [trial(c) for c in train_cond]
    ev = [trial(c) for c in eval_cond]
    train_rates = np.stack([r for r, _ in tr])                # (40, 45, 28)
    eval_rates = np.stack([r for r, _ in ev])                 # (24, 45, 28)
    train_behavior = np.stack([b for _, b in tr])             # float64, as make_jagged_array
    eval_behavior = np.stack([b for _, b in ev])
    # NWBDataset bins spikes as float16; save_to_h5 widens every float to float32
    train_spikes = rng.poisson(train_rates).astype(np.float16)
    eval_spikes = rng.poisson(eval_rates).astype(np.float16)

    # _make_psth: condition-average of smoothed spikes over train+eval trials (float64),
    # cond_idx = sorted positions of each condition's trials within the train/eval tensors
    psth = np.stack([
        np.concatenate([train_rates[train_cond == c, :T], eval_rates[eval_cond == c, :T]]).mean(0)
        for c in range(n_cond)
    ])
    psth = psth * np.exp(0.05 * rng.standard_normal(psth.shape))
    train_cond_idx = cond_object_array([np.flatnonzero(train_cond == c) for c in range(n_cond)])
    eval_cond_idx = cond_object_array([np.flatnonzero(eval_cond == c) for c in range(n_cond)])

    targets = {group: {
        "eval_spikes_heldout": eval_spikes[:, :T, n_in:],
        "train_behavior": train_behavior,
        "eval_behavior": eval_behavior,
        "eval_spikes_heldin_forward": eval_spikes[:, T:, :n_in],
        "eval_spikes_heldout_forward": eval_spikes[:, T:, n_in:],
        # (no train/eval_decode_mask: PARAMS['mc_maze'] has no 'decode_masks'; no jitter)
        "eval_cond_idx": eval_cond_idx,
        "train_cond_idx": train_cond_idx,
        "psth": psth,
    }}
    noisy = lambda r: quantize(r * np.exp(0.1 * rng.standard_normal(r.shape)))
    sub_train, sub_eval = noisy(train_rates[:, :T]), noisy(eval_rates)
    submission = {group: {
        "train_rates_heldin": sub_train[..., :n_in],
        "train_rates_heldout": sub_train[..., n_in:],
        "eval_rates_heldin": sub_eval[:, :T, :n_in],
        "eval_rates_heldout": sub_eval[:, :T, n_in:],
        "eval_rates_heldin_forward": sub_eval[:, T:, :n_in],
        "eval_rates_heldout_forward": sub_eval[:, T:, n_in:],
    }}
    tgt = save(targets, "nlbmaze_targets.h5")
    sub = save(submission, "nlbmaze_submission.h5")
    result = evaluate(tgt, sub)

    # single-function values, computed from what is on disk (float32) like evaluate does
    with h5py.File(tgt, "r") as t, h5py.File(sub, "r") as s:
        g, u = t[group], s[group]
        er = np.concatenate([u["eval_rates_heldin"][()], u["eval_rates_heldout"][()]], -1).astype(float)
        trr = np.concatenate([u["train_rates_heldin"][()], u["train_rates_heldout"][()]], -1).astype(float)
        flat = lambda x: x.reshape(-1, x.shape[-1])
        single = {
            "bits_per_spike": bits_per_spike(u["eval_rates_heldout"][()].astype(float), g["eval_spikes_heldout"][()].astype(float)),
            "fit_and_eval_decoder": fit_and_eval_decoder(flat(trr), flat(g["train_behavior"][()].astype(float)),
                                                         flat(er), flat(g["eval_behavior"][()].astype(float))),
            "eval_psth": eval_psth(g["psth"][()].astype(float), er, g["eval_cond_idx"][()]),
        }
    expected = write_expected("nlbmaze_expected.json", group, result, single)

    # 3. the model-input file for the same trials (flat, no group)
    inputs = {
        # make_train_input_tensors(include_behavior=True, include_forward_pred=True)
        "train_spikes_heldin": train_spikes[:, :T, :n_in],
        "train_spikes_heldout": train_spikes[:, :T, n_in:],
        "train_behavior": train_behavior,
        "train_spikes_heldin_forward": train_spikes[:, T:, :n_in],
        "train_spikes_heldout_forward": train_spikes[:, T:, n_in:],
        # make_eval_input_tensors(trial_split='val'); with 'test' only eval_spikes_heldin
        "eval_spikes_heldin": eval_spikes[:, :T, :n_in],
        "eval_spikes_heldout": eval_spikes[:, :T, n_in:],
    }
    save(inputs, "nlbinput.h5")
    with h5py.File(path("nlbinput.h5"), "r") as f, h5py.File(tgt, "r") as t:
        assert np.array_equal(f["eval_spikes_heldout"][()], t[group]["eval_spikes_heldout"][()])
        assert np.array_equal(f["train_behavior"][()], t[group]["train_behavior"][()])
    return expected


# --------------------------------------------------------------------------------------
# 2. dmfc_rsg at 20 ms
# --------------------------------------------------------------------------------------
def make_rsg(seed=12):
    rng = np.random.default_rng(seed)
    group = "dmfc_rsg_20"
    params = PARAMS["dmfc_rsg"]
    n_in, n_ho = 12, 5
    n = n_in + n_ho
    T = params["eval_tensor_params"]["seg_len"] // BIN_MS     # 75 bins, pad='front'
    F = params["fp_len"] // BIN_MS                            # 10 forward bins after go(+jitter)
    # psth conditions (is_eye, theta, is_short, ts[ms]); tp-corr groups use the first three
    conds = [(0, 0, 1, 480), (0, 0, 1, 640), (0, 0, 0, 900),
             (1, 180, 1, 560), (1, 180, 0, 1000), (1, 180, 0, 1200)]
    train_sizes = [4, 3, 4, 3, 3, 3]                          # 20 train trials
    eval_sizes = [4, 3, 4, 3, 3, 3]                           # 20 eval trials
    rows = []
    for split, sizes in (("train", train_sizes), ("val", eval_sizes)):
        labels = rng.permutation(np.repeat(np.arange(len(conds)), sizes))
        for c in labels:
            is_eye, theta, is_short, ts = conds[c]
            tp = float(np.round(ts * (1.05 + 0.08 * rng.standard_normal())))
            rows.append(dict(split=split, cond=c, is_eye=float(is_eye), theta=float(theta),
                             is_short=float(is_short), ts=float(ts), tp=tp, is_outlier=0))
    ti = pd.DataFrame(rows)
    # one outlier in each split (condition 2): behaviour NaN, excluded from every cond_idx
    for split in ("train", "val"):
        ti.loc[ti.index[(ti.split == split) & (ti.cond == 2)][0], "is_outlier"] = 1
    train_mask, eval_mask = (ti.split == "train").to_numpy(), (ti.split == "val").to_numpy()

    # jitter exactly as make_eval_target_tensors draws it (seeded per split with seed=0)
    fake = types.SimpleNamespace(trial_info=ti, bin_width=BIN_MS)
    np.random.seed(0)
    train_jitter_ms = _prep_jitter(fake, train_mask, params["jitter"])
    np.random.seed(0)
    eval_jitter_ms = _prep_jitter(fake, eval_mask, params["jitter"])
    train_jit = (train_jitter_ms / BIN_MS).round().astype(int)
    eval_jit = (eval_jitter_ms / BIN_MS).round().astype(int)

    base = rng.uniform(0.05, 0.5, n)
    w = rng.normal(0, 0.7, (4, n))                            # loadings of the set–go trajectory
    eye = rng.normal(0, 0.3, n)
    burst = rng.uniform(0.0, 0.8, n)
    post = rng.normal(0, 0.6, (2, n))                         # response-dependent activity after go

    def rates_at(tau, L, c):
        """Rates at bin offsets tau relative to go, for a trial with set–go length L bins."""
        is_eye, theta, is_short, ts = conds[c]
        phi = np.clip((tau + L) / L, 0, 1)[:, None]          # 0 before set, 1 after go
        basis = [phi, np.sin(np.pi * phi), np.cos(np.pi * phi) - 1, phi ** 2 * (1 - phi)]
        log_r = sum(b * w[k] for k, b in enumerate(basis)) + is_eye * eye + 0.2 * is_short * w[3]
        log_r = log_r + burst * np.exp(-np.maximum(tau, 0) / 8.0)[:, None] * (tau >= 0)[:, None]
        log_r = log_r + (tau >= 0)[:, None] * (is_eye * post[0] + (theta / 180.0) * post[1] + is_short * 0.5 * post[0])
        return base * np.exp(log_r)

    def split_tensors(sel, jit):
        sub = ti[sel]
        rates, fwd, spikes_ho = [], [], []
        for (_, row), j in zip(sub.iterrows(), jit):
            L = int(round(row.tp / BIN_MS))
            tau = np.arange(T + F) - (T - j)                  # rate bin t <-> go + (t - (T - j))
            r = rates_at(tau, L, row.cond)
            rates.append(r[:T]); fwd.append(r[T:])
            # make_jagged_array(pad='front', seg_len=1500, jitter): set..go spikes end at T-j
            s = np.full((T, n), np.nan)
            win = (tau[:T] >= -L) & (tau[:T] < 0)
            s[win] = rng.poisson(r[:T][win])
            spikes_ho.append(s)
        return np.stack(rates), np.stack(fwd), np.stack(spikes_ho)

    train_rates, _, _ = split_tensors(train_mask, train_jit)
    eval_rates, eval_fwd_rates, eval_spikes = split_tensors(eval_mask, eval_jit)
    eval_fwd_spikes = rng.poisson(eval_fwd_rates).astype(np.float16)

    # behaviour: trial_info columns as float64, NaN rows where behavior_mask (is_outlier==0) fails
    def behavior(sel):
        b = ti[sel][params["behavior_field"]].to_numpy().astype("float")
        b[~params["behavior_mask"](ti[sel]).to_numpy()] = np.nan
        return b

    # _make_psth (pad='front', seg_len=1500, skip_mask = is_outlier): per condition, trials
    # shorter than 0.8 * mean length dropped, average aligned to go over the shortest length
    train_ids = np.flatnonzero(train_mask)
    eval_ids = np.flatnonzero(eval_mask)
    psths, train_idx, eval_idx = [], [], []
    for c in range(len(conds)):
        members = ti.index[(ti.cond == c) & (ti.is_outlier == 0)].to_numpy()
        lens = {i: int(round(ti.tp[i] / BIN_MS)) for i in members}
        mean_len = np.mean(list(lens.values()))
        members = np.array([i for i in members if lens[i] >= 0.8 * mean_len])
        min_len = min(lens[i] for i in members)
        tau = np.arange(-min_len, 0)
        p = np.mean([rates_at(tau, lens[i], c) for i in members], axis=0)
        p = p * np.exp(0.05 * rng.standard_normal(p.shape))
        psths.append(np.concatenate([np.full((T - min_len, n), np.nan), p]))
        train_idx.append(np.sort(np.flatnonzero(np.isin(train_ids, members))))
        eval_idx.append(np.sort(np.flatnonzero(np.isin(eval_ids, members))))

    targets = {group: {
        "eval_spikes_heldout": eval_spikes[..., n_in:],
        "train_behavior": behavior(train_mask),
        "eval_behavior": behavior(eval_mask),
        "eval_spikes_heldin_forward": eval_fwd_spikes[..., :n_in],
        "eval_spikes_heldout_forward": eval_fwd_spikes[..., n_in:],
        "eval_cond_idx": cond_object_array(eval_idx),
        "train_cond_idx": cond_object_array(train_idx),
        "psth": np.stack(psths),
        "eval_jitter": eval_jit,
        "train_jitter": train_jit,
    }}
    noisy = lambda r: quantize(r * np.exp(0.1 * rng.standard_normal(r.shape)))
    sub_train, sub_eval, sub_fwd = noisy(train_rates), noisy(eval_rates), noisy(eval_fwd_rates)
    submission = {group: {
        "train_rates_heldin": sub_train[..., :n_in],
        "train_rates_heldout": sub_train[..., n_in:],
        "eval_rates_heldin": sub_eval[..., :n_in],
        "eval_rates_heldout": sub_eval[..., n_in:],
        "eval_rates_heldin_forward": sub_fwd[..., :n_in],
        "eval_rates_heldout_forward": sub_fwd[..., n_in:],
    }}
    tgt = save(targets, "nlbrsg_targets.h5")
    sub = save(submission, "nlbrsg_submission.h5")
    result = evaluate(tgt, sub)

    with h5py.File(tgt, "r") as t, h5py.File(sub, "r") as s:
        g, u = t[group], s[group]
        er = np.concatenate([u["eval_rates_heldin"][()], u["eval_rates_heldout"][()]], -1).astype(float)
        sho = g["eval_spikes_heldout"][()].astype(float)
        single = {
            "bits_per_spike": bits_per_spike(u["eval_rates_heldout"][()].astype(float), sho),
            "eval_psth": eval_psth(g["psth"][()].astype(float), er, g["eval_cond_idx"][()], jitter=g["eval_jitter"][()]),
            "speed_tp_correlation": speed_tp_correlation(sho, er, g["eval_behavior"][()].astype(float)),
        }
    return write_expected("nlbrsg_expected.json", group, result, single)


# --------------------------------------------------------------------------------------
# bools: area2_bump's decode masks are the only boolean arrays nlb_tools emits
# --------------------------------------------------------------------------------------
def make_decode_mask():
    ctr_hold_bump = lambda m: pd.DataFrame({"ctr_hold_bump": m})
    masks = PARAMS["area2_bump"]["decode_masks"]              # lambda -> np.stack([..==0, ..==1]).T
    train = masks(ctr_hold_bump(np.array([0, 1, 0, 0, 1, 1, 0])))
    evl = masks(ctr_hold_bump(np.array([1, 0, 0, 1, 0])))
    assert train.dtype == bool
    save({"area2_bump_20": {"train_decode_mask": train, "eval_decode_mask": evl}}, "nlbdecodemask.h5")


# --------------------------------------------------------------------------------------
# what save_to_h5 can and cannot write (recorded in NLB_LAYOUTS.md)
# --------------------------------------------------------------------------------------
def probe_writer():
    import tempfile
    cases = {
        "float16 array": np.ones((2, 2), np.float16),
        "float64 array": np.ones((2, 2), np.float64),
        "int64 array": np.ones(3, np.int64),
        "uint8 array": np.ones(3, np.uint8),
        "bool array": np.array([[True, False], [False, True]]),
        "ragged object array of int64 arrays": cond_object_array([[0, 2, 5], [1]]),
        "ragged object array, first element empty": cond_object_array([[], [1, 3]]),
        "np.array([equal-length int arrays], dtype=object) (2-D object)": np.array([np.arange(2), np.arange(2)], dtype=object),
        "unicode str array ('<U3')": np.array(["ab", "cde"]),
        "bytes array ('|S3')": np.array([b"ab", b"cde"]),
        "object array of str": np.array(["ab", "cde"], dtype=object),
        "numpy scalar": np.float64(3.0),
    }
    lines = []
    with tempfile.TemporaryDirectory() as d:
        for label, val in cases.items():
            p = os.path.join(d, "probe.h5")
            if os.path.exists(p):
                os.remove(p)
            try:
                save_to_h5({"x": val}, p, overwrite=True)
                with h5py.File(p, "r") as f:
                    ds = f["x"]
                    vl = h5py.check_vlen_dtype(ds.dtype)
                    tid = ds.id.get_type()
                    kind = {h5py.h5t.ENUM: "H5T_ENUM", h5py.h5t.VLEN: "H5T_VLEN", h5py.h5t.FLOAT: "H5T_FLOAT",
                            h5py.h5t.INTEGER: "H5T_INTEGER", h5py.h5t.STRING: "H5T_STRING"}.get(tid.get_class(), str(tid.get_class()))
                    out = f"written: {kind}, h5py dtype {ds.dtype}{f' (vlen of {vl})' if vl is not None else ''}, " \
                          f"filter {ds.compression}, attrs {len(ds.attrs)}, file attrs {len(f.attrs)}"
            except Exception as e:                          # noqa: BLE001 - record the failure
                out = f"FAILS: {type(e).__name__}: {e}"
            lines.append(f"| {label} | {out} |")
    return lines


LAYOUT_NOTES = """\
# NLB on-disk layouts (as written by nlb_tools 0.0.4 `save_to_h5`)

Generated by `make_nlb_layout_fixtures.py`; every fixture below was written by
`nlb_tools.make_tensors.save_to_h5`, expected scores by `nlb_tools.evaluation.evaluate`.

## Writer rules (`_save_h5_r`, dlen=32, compression="gzip")

* Nested dict -> HDF5 group (target/submission files: one group per dataset, e.g.
  `mc_maze_20`, `dmfc_rsg_20`; model-input files from make_*_input_tensors are flat, no group).
* Every dataset is chunked (h5py auto chunks; one chunk for these small fixtures) + gzip
  (DEFLATE level 4, h5py's default), **no shuffle filter**, no fill value set.
  (`h5dump -H -p` shows the filters; the dumps below are `-H` only.)
* Any floating dtype (float16 spikes from NWBDataset, float64 behaviour/psth) -> `H5T_IEEE_F32LE`.
  So spike tensors are **float32 on disk**, never int (they hold counts, NaN for padding).
* Any integer dtype (int64 jitter, uint8, ...) -> `H5T_STD_I32LE`.
* `dtype == object` (the `*_cond_idx` from `_make_psth`, `np.array(list_of_index_arrays,
  dtype='object')`) -> `H5T_VLEN { H5T_STD_I32LE }`, 1-D, one element per condition; elements may
  be empty (a condition with train trials but no eval trial). h5py reads it back as an object
  array of int32 arrays. If *all* conditions had the same trial count numpy makes a 2-D object
  array and save_to_h5 **fails** (`Object dtype dtype('O') has no native HDF5 equivalent`), so a
  file from nlb_tools always has ragged (vlen) cond_idx.
* bool -> left as bool; h5py stores it as `H5T_ENUM { H5T_STD_I8LE; "FALSE" 0; "TRUE" 1; }`.
  The only bools nlb_tools emits are `train_decode_mask`/`eval_decode_mask` (trials x masks),
  and only for `area2_bump` (PARAMS['area2_bump']['decode_masks']); mc_maze, mc_rtt, dmfc_rsg
  and the mc_maze scaling sets have none (evaluate then uses one all-True mask).
* Strings: make_*_tensors never emit string data. save_to_h5 cannot write numpy unicode
  (`<U`) or object-of-str arrays at all (see probe table); only fixed-length bytes `|S` would go
  through (fixed-length `H5T_STRING`, STRPAD NULLPAD, ASCII), and nlb_tools never produces those.
* **No attributes** anywhere: save_to_h5 never writes a file, group or dataset attribute.
* Scalars fail (gzip on a scalar dataset); nlb_tools never emits them.

## Keys per file

| file / key | written from | HDF5 type | shape |
|---|---|---|---|
| input `train_spikes_heldin`, `train_spikes_heldout` | float16 | F32LE | trials x 35 x neurons |
| input `train_spikes_heldin_forward`, `..._heldout_forward` | float16 | F32LE | trials x 10 x neurons |
| input `train_behavior` (mc_maze: hand_vel) | float64 | F32LE | trials x 35 x 2 |
| input `eval_spikes_heldin` (+ `eval_spikes_heldout` unless split 'test') | float16 | F32LE | trials x 35 x neurons |
| targets `eval_spikes_heldout` | float16 (dmfc: float64 with NaN pad) | F32LE | eval x T x heldout |
| targets `eval_spikes_heldin_forward`, `eval_spikes_heldout_forward` | float16 | F32LE | eval x 10 x n |
| targets `train_behavior`, `eval_behavior` | float64 | F32LE | maze: trials x 35 x 2; dmfc: trials x 5 (is_eye, theta, is_short, ts, tp; NaN rows = outliers) |
| targets `psth` | float64 | F32LE | conditions x T x (heldin+heldout); dmfc NaN-padded at the front |
| targets `train_cond_idx`, `eval_cond_idx` | object array of int64 arrays | VLEN of I32LE | conditions |
| targets `train_jitter`, `eval_jitter` (dmfc_rsg only) | int64 | I32LE | trials (in bins) |
| targets `train_decode_mask`, `eval_decode_mask` (area2_bump only) | bool | ENUM of I8 FALSE/TRUE | trials x 2 |
| submission `{train,eval}_rates_{heldin,heldout}`, `eval_rates_*_forward` | float32 | F32LE | trials x T x n |

dmfc_rsg at 20 ms: T = 75 (seg_len 1500 ms, pad 'front'); eval set–go spikes end at bin
75 - eval_jitter, NaN elsewhere; evaluate's `eval_psth` shifts each eval trial's rates
later by its jitter before averaging, `speed_tp_correlation` uses the non-NaN bins of
`eval_spikes_heldout[..., 0]` and conditions = distinct (is_eye, theta, is_short) rows of
eval_behavior. There is no `vel R2` for dmfc_rsg (it reports `tp corr` instead).

## What save_to_h5 does with other inputs (probe)

| input | result |
|---|---|
"""


def write_layouts(maze, rsg):
    text = LAYOUT_NOTES + "\n".join(probe_writer()) + "\n"
    text += "\n## Expected scores (nlb_tools.evaluation.evaluate)\n\n"
    for name, e in (("nlbmaze", maze), ("nlbrsg", rsg)):
        text += f"* `{name}` ({e['group']}): " + ", ".join(f"{k} = {v!r}" for k, v in sorted(e["evaluate"].items())) + "\n"
    text += "\n## `h5dump -H` of each fixture\n"
    for f in ("nlbmaze_targets.h5", "nlbmaze_submission.h5", "nlbrsg_targets.h5",
              "nlbrsg_submission.h5", "nlbinput.h5", "nlbdecodemask.h5"):
        try:
            dump = subprocess.run(["h5dump", "-H", f], cwd=HERE, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            dump = f"(h5dump unavailable: {e})\n"
        text += f"\n### {f} ({os.path.getsize(path(f))} bytes)\n\n```\n{dump.rstrip()}\n```\n"
    with open(path("NLB_LAYOUTS.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.WARNING)
    maze = make_maze()
    rsg = make_rsg()
    make_decode_mask()
    write_layouts(maze, rsg)
    for name, e in (("nlbmaze", maze), ("nlbrsg", rsg)):
        print(name, json.dumps(e["evaluate"]))
    for f in sorted(os.listdir(HERE)):
        if f.startswith("nlb"):
            print(f"{os.path.getsize(path(f)):>8}  {f}")
