"""NLB tensor files, submission files and run directories, as lflow-dist reads and writes them."""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

__all__ = ["read_nlb", "write_submission", "submission_group", "read_submission", "read_run", "NLB_DATASETS",
           "SPIKE_KEYS"]

#: The keys lflow-dist reads from an NLB tensor file (NLBTensors.spikeKeys), plus behaviour.
SPIKE_KEYS = (
    "train_spikes_heldin", "train_spikes_heldout", "train_spikes_heldin_forward", "train_spikes_heldout_forward",
    "eval_spikes_heldin", "eval_spikes_heldout", "eval_spikes_heldin_forward", "eval_spikes_heldout_forward",
    "train_behavior", "eval_behavior",
)

#: NLB'21's datasets: held-in and held-out neurons, bins of the observed window at 5 ms.
NLB_DATASETS = (
    ("mc_maze", 137, 45, 140), ("mc_rtt", 98, 32, 120), ("area2_bump", 49, 16, 120), ("dmfc_rsg", 40, 14, 300),
    ("mc_maze_large", 122, 40, 140), ("mc_maze_medium", 114, 38, 140), ("mc_maze_small", 107, 35, 140),
)


def read_nlb(path) -> dict:
    """The arrays of an NLB tensor file (nlb_tools' make_*_tensors + save_to_h5, or `lflow-dist
    synth`) as float32 numpy arrays (NaN = missing bin), keyed as in the file; `path` and the
    `dataset_name` attribute (when present) are added."""
    import h5py

    out = {"path": os.fspath(path)}
    with h5py.File(path, "r") as f:
        for key in SPIKE_KEYS:
            if key in f:
                out[key] = np.asarray(f[key], dtype=np.float32)
        if "dataset_name" in f.attrs:
            name = f.attrs["dataset_name"]
            out["dataset_name"] = name.decode() if isinstance(name, bytes) else str(name)
    if "train_spikes_heldin" not in out:
        raise ValueError(f"'{path}' has no 'train_spikes_heldin': it is not an NLB tensor file")
    return out


def nlb_dataset(held_in: int, held_out: int, bins: int) -> Optional[str]:
    """The NLB group name (mc_maze at 5 ms, mc_maze_20 at 20 ms) of data with these shapes."""
    for name, nin, nho, bins5 in NLB_DATASETS:
        if nin == held_in and nho == held_out:
            if bins == bins5:
                return name
            if bins * 4 == bins5:
                return name + "_20"
    return None


def submission_group(data, explicit: Optional[str] = None) -> str:
    """The submission's group as lflow-dist names it (Submission.group): `explicit`, else the
    data file's dataset_name attribute, else the NLB dataset its shapes match, else the file stem."""
    if explicit:
        return explicit
    tensors = read_nlb(data) if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__") else data
    if tensors.get("dataset_name"):
        return tensors["dataset_name"]
    a, b = tensors["train_spikes_heldin"], tensors["train_spikes_heldout"]
    match = nlb_dataset(a.shape[2], b.shape[2], a.shape[1])
    if match:
        return match
    return os.path.splitext(os.path.basename(tensors.get("path", "submission")))[0]


def write_submission(path, rates: dict, group: str) -> None:
    """Writes an NLB submission file as `lflow-dist predict` does: one group named `group` with
    float32 train_rates_heldin/heldout, eval_rates_heldin/heldout and eval_rates_*_forward (the
    keys `rates` has; see LangevinFlow.predict_nlb). Written to a temporary file and renamed."""
    import h5py

    path = os.fspath(path)
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    order = ("train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout",
             "eval_rates_heldin_forward", "eval_rates_heldout_forward")
    try:
        with h5py.File(temporary, "w") as f:
            for key in order:
                if key in rates:
                    f.create_dataset(f"{group}/{key}", data=np.asarray(rates[key], dtype=np.float32))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def read_submission(path) -> dict:
    """{group: {key: array}} of a submission file."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for group in f:
            out[group] = {k: np.asarray(v) for k, v in f[group].items()}
    return out


def read_run(run_dir) -> dict:
    """What a `lflow-dist train` run directory holds, for a notebook:

    - `metrics`: metrics.jsonl, one row per epoch (a pandas DataFrame when pandas is installed,
      else a list of dicts);
    - `latents`: latents.h5 as {name: array} (when the run wrote it);
    - `validation`, `baseline`: validation.json and baseline.json (when present);
    - `best`, `submission`: the paths of best.h5 and submission.h5 (when present);
    - `config`: the resolved config of best.h5 (a dict).
    """
    import h5py

    run_dir = os.fspath(run_dir)
    out = {"path": run_dir}
    rows = []
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        with open(metrics) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    try:
        import pandas as pd

        out["metrics"] = pd.DataFrame(rows)
    except ImportError:
        out["metrics"] = rows
    latents = os.path.join(run_dir, "latents.h5")
    if os.path.exists(latents):
        arrays = {}
        with h5py.File(latents, "r") as f:
            f.visititems(lambda name, obj: arrays.__setitem__(name, np.asarray(obj)) if hasattr(obj, "shape") else None)
            arrays.update({f"@{k}": (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()})
        out["latents"] = arrays
    for name in ("validation", "baseline"):
        p = os.path.join(run_dir, f"{name}.json")
        if os.path.exists(p):
            with open(p) as f:
                out[name] = json.load(f)
    for name, file in (("best", "best.h5"), ("submission", "submission.h5")):
        p = os.path.join(run_dir, file)
        if os.path.exists(p):
            out[name] = p
    if "best" in out:
        with h5py.File(out["best"], "r") as f:
            text = f.attrs.get("config")
            if text is not None:
                out["config"] = json.loads(text.decode() if isinstance(text, bytes) else text)
    return out
