"""Generates the NLB metric fixtures that Tests/MetricsTests compares the native metrics with.

Run once, from this directory, with nlb_tools 0.0.4 (its pinned pandas does not build on
Python 3.11, hence --no-deps):

    python3 -m venv /opt/nlbenv
    /opt/nlbenv/bin/pip install --no-deps nlb-tools==0.0.4
    /opt/nlbenv/bin/pip install "numpy<2" pandas scipy h5py scikit-learn pynwb
    /opt/nlbenv/bin/python make_fixtures.py

For each case it writes `<case>_submission.h5` and `<case>_targets.h5` in the NLB formats
(group `mc_maze_20`, the name nlb_tools.evaluation.evaluate recognises), scores them with
nlb_tools' own `evaluate`, and stores its results plus the single-function values
(`bits_per_spike`, `fit_and_eval_decoder`, `eval_psth`) in `<case>_expected.json`.
"""
import json

import h5py
import numpy as np
from nlb_tools.evaluation import bits_per_spike, eval_psth, evaluate, fit_and_eval_decoder

GROUP = "mc_maze_20"


def make_case(name, seed, n_train, n_eval, bins, fwd, n_in, n_ho, conditions, masks, zero_rate):
    rng = np.random.default_rng(seed)
    n = n_in + n_ho
    base = rng.gamma(2.0, 0.3, size=(1, 1, n))
    def rates(count, t):
        return (base * np.exp(0.5 * rng.standard_normal((count, t, n)))).astype(np.float32)
    train_rates, eval_rates, eval_fwd_rates = rates(n_train, bins), rates(n_eval, bins), rates(n_eval, fwd)
    if zero_rate:
        eval_rates[0, 0, n_in] = 0.0            # a zero held-out rate: nlb_tools replaces it by 1e-9
    eval_spikes = rng.poisson(eval_rates * 1.3 + 0.05).astype(np.float32)
    eval_spikes[1, 2, n_in + 1] = np.nan        # a missing bin
    fwd_spikes = rng.poisson(eval_fwd_rates * 1.2 + 0.05).astype(np.float32)
    train_behavior = (train_rates[..., :2] * 3 + 0.3 * rng.standard_normal((n_train, bins, 2))).astype(np.float32)
    eval_behavior = (eval_rates[..., :2] * 3 + 0.3 * rng.standard_normal((n_eval, bins, 2))).astype(np.float32)
    train_behavior[0, 0, :] = np.nan             # rows with NaN behaviour are dropped
    eval_behavior[2, 1, :] = np.nan
    cond = np.arange(n_eval) % conditions
    eval_cond_idx = np.stack([np.flatnonzero(cond == c) for c in range(conditions)])
    psth = np.stack([eval_rates[cond == c].mean(axis=0) * 0.9 + 0.02 for c in range(conditions)]).astype(np.float64)
    psth += 0.05 * rng.standard_normal(psth.shape)
    psth[0, -1, :] = np.nan                      # a bin outside the condition's trial time
    if masks == 1:
        train_mask = np.ones((n_train, 1), dtype=bool)
        eval_mask = np.ones((n_eval, 1), dtype=bool)
    else:
        train_mask = np.stack([np.arange(n_train) % 2 == 0, np.arange(n_train) % 2 == 1], axis=1)
        eval_mask = np.stack([np.arange(n_eval) % 2 == 0, np.arange(n_eval) % 2 == 1], axis=1)

    sub_path, tgt_path = f"{name}_submission.h5", f"{name}_targets.h5"
    with h5py.File(sub_path, "w") as f:
        g = f.create_group(GROUP)
        g["train_rates_heldin"] = train_rates[..., :n_in]
        g["train_rates_heldout"] = train_rates[..., n_in:]
        g["eval_rates_heldin"] = eval_rates[..., :n_in]
        g["eval_rates_heldout"] = eval_rates[..., n_in:]
        g["eval_rates_heldin_forward"] = eval_fwd_rates[..., :n_in]
        g["eval_rates_heldout_forward"] = eval_fwd_rates[..., n_in:]
    with h5py.File(tgt_path, "w") as f:
        g = f.create_group(GROUP)
        g["eval_spikes_heldout"] = eval_spikes[..., n_in:]
        g["train_behavior"] = train_behavior
        g["eval_behavior"] = eval_behavior
        g["eval_spikes_heldin_forward"] = fwd_spikes[..., :n_in]
        g["eval_spikes_heldout_forward"] = fwd_spikes[..., n_in:]
        g["psth"] = psth
        g["eval_cond_idx"] = eval_cond_idx
        if masks > 1:
            g["train_decode_mask"] = train_mask
            g["eval_decode_mask"] = eval_mask

    result = evaluate(tgt_path, sub_path)[0][f"{GROUP}_split"]
    flat = lambda x: x.reshape(-1, x.shape[-1]).astype(np.float64)
    single = {
        "bits_per_spike": float(bits_per_spike(eval_rates[..., n_in:].astype(np.float64), eval_spikes[..., n_in:].astype(np.float64))),
        "fit_and_eval_decoder": float(fit_and_eval_decoder(flat(train_rates), flat(train_behavior), flat(eval_rates), flat(eval_behavior))),
        "eval_psth": float(eval_psth(psth, eval_rates.astype(np.float64), list(eval_cond_idx))),
    }
    expected = {"evaluate": {k: float(v) for k, v in result.items()}, "single": single}
    with open(f"{name}_expected.json", "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
    print(name, expected)


make_case("case1", seed=1, n_train=40, n_eval=20, bins=6, fwd=3, n_in=5, n_ho=3, conditions=4, masks=1, zero_rate=True)
make_case("case2", seed=2, n_train=57, n_eval=24, bins=7, fwd=2, n_in=6, n_ho=4, conditions=3, masks=2, zero_rate=False)
