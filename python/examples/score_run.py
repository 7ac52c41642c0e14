#!/usr/bin/env python3
"""Load a `lflow-dist train` run's best.h5 in PyTorch, predict an NLB file, write the
submission and score it with nlb_tools, next to lflow-dist's own submission.

    python3 python/examples/score_run.py --run Checkpoints/maze --data mc_maze_20.h5 \
        --targets eval_targets.h5 [--samples 50] [--out sub.h5]

Prediction follows `lflow-dist predict`: log-rates averaged over --samples stochastic passes
(default: the checkpoint config's predictionSamples) with lflow-dist's keyed noise, then
exponentiated; --samples 0 is the deterministic mean path. With --targets and nlb_tools
installed, both submissions (ours, and RUN/submission.h5 or --compare) are scored with
nlb_tools.evaluation.evaluate. The last line of stdout is one JSON object.
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # run from a checkout too

import lflow_dist  # noqa: E402


def load_h5(path):
    import h5py

    def rec(obj):
        return {k: rec(obj[k]) if isinstance(obj[k], h5py.Group) else obj[k][()] for k in obj.keys()}
    with h5py.File(path, "r") as f:
        return rec(f)


def score(targets: dict, submission: dict, group: str) -> dict:
    """nlb_tools' metrics of one submission group against the target file's group."""
    from nlb_tools.evaluation import evaluate

    names = [k for k in targets if isinstance(targets[k], dict) and k != "truth"]
    target_group = group if group in targets else (names[0] if len(names) == 1 else None)
    if target_group is None:
        raise SystemExit(f"the target file has groups {names}, none named '{group}'")
    # evaluate() scores only NLB's group names; the name selects nothing but dmfc_rsg's special
    # metric and the bin suffix, so other data (the built-in Lorenz) is scored as mc_maze.
    nlb = re.match(r"^(mc_maze|mc_rtt|area2_bump|dmfc_rsg|mc_maze_large|mc_maze_medium|mc_maze_small)(_20)?$", target_group)
    name = target_group if nlb else "mc_maze"
    result = evaluate({name: targets[target_group]}, {name: submission})
    metrics = {}
    for entry in result:
        for _, values in entry.items():
            for k, v in values.items():
                metrics[re.sub(r"^\[\d+\] ", "", k)] = float(v)
    return metrics


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", help="run directory of `lflow-dist train` (its best.h5, and submission.h5 to compare)")
    p.add_argument("--checkpoint", help="checkpoint to load instead of RUN/best.h5")
    p.add_argument("--data", required=True, help="NLB tensor file whose trials to predict")
    p.add_argument("--targets", help="NLB evaluation targets (nlb_tools make_eval_target_tensors) to score against")
    p.add_argument("--out", help="submission file to write (default: RUN/submission-python.h5 or ./submission-python.h5)")
    p.add_argument("--samples", type=int, help="stochastic passes (default: the config's predictionSamples); 0 = mean path")
    p.add_argument("--compare", help="another submission to score and compare (default: RUN/submission.h5)")
    p.add_argument("--dataset-name", help="submission group (default: as lflow-dist names it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if not args.run and not args.checkpoint:
        p.error("give --run or --checkpoint")

    import torch
    torch.set_num_threads(args.threads)

    checkpoint = args.checkpoint or os.path.join(args.run, "best.h5")
    out = args.out or os.path.join(args.run or ".", "submission-python.h5")
    compare = args.compare or (os.path.join(args.run, "submission.h5") if args.run else None)
    if compare and not os.path.exists(compare):
        compare = None

    started = time.time()
    model = lflow_dist.LangevinFlow.from_checkpoint(checkpoint)
    tensors = lflow_dist.read_nlb(args.data)
    samples = model.config.predictionSamples if args.samples is None else args.samples
    print(f"{checkpoint}: {sum(p.numel() for p in model.parameters())} parameters, {model.config.encoder} encoder, "
          f"{model.config.posterior} posterior, {model.config.decoder} decoder; predicting "
          f"{tensors['train_spikes_heldin'].shape[0]} train and "
          f"{tensors.get('eval_spikes_heldin', np.empty((0,))).shape[0]} eval trials x {max(samples, 1)} pass(es)")
    rates = model.predict_nlb(tensors, samples=samples)
    group = lflow_dist.submission_group(tensors, args.dataset_name)
    lflow_dist.write_submission(out, rates, group)
    result = {"submission": out, "group": group, "samples": samples, "seconds": round(time.time() - started, 1)}
    print(f"wrote {out} (group {group}) in {result['seconds']} s")

    if compare:
        theirs = lflow_dist.read_submission(compare)
        theirs = theirs.get(group) or next(iter(theirs.values()))
        common = [k for k in rates if k in theirs]
        result["max relative rate difference vs " + compare] = max(
            float(np.max(np.abs(rates[k].astype(np.float64) / theirs[k] - 1))) for k in common)

    if args.targets:
        try:
            import nlb_tools  # noqa: F401
        except ImportError:
            print("nlb_tools is not installed: not scoring (pip install --no-deps nlb-tools; pip install pandas scipy "
                  "scikit-learn pynwb)")
        else:
            targets = load_h5(args.targets)
            ours = score(targets, rates, group)
            result["python"] = ours
            print("python  " + "  ".join(f"{k} {v:.6f}" for k, v in ours.items()))
            if compare:
                sub = load_h5(compare)
                theirs = sub.get(group) or next(iter(sub.values()))
                reference = score(targets, theirs, group)
                result["lflow-dist"] = reference
                print("lflow   " + "  ".join(f"{k} {v:.6f}" for k, v in reference.items()))
                result["co-bps difference"] = abs(ours["co-bps"] - reference["co-bps"])
                print(f"co-bps difference {result['co-bps difference']:.2e}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
