"""Parity of lflow_dist (PyTorch) with the lflow-dist binary, for every config option.

Each case trains a tiny model with the binary (`lflow-dist train`, 1-3 epochs), then compares:
- the mean path: `lflow-dist predict --samples 0` against `model.predict_nlb(samples=0)`;
- sampled prediction: `lflow-dist predict --samples 3`, and the submission `train` wrote with
  the config's predictionSamples, against `model.predict_nlb(samples=...)` with the same keyed
  Philox noise;
- float64: `lflow-dist inspect` (log-rates and latents of a deterministic float64 pass)
  against the model in torch.float64.
Rates are compared by the largest relative difference, which must be <= 1e-5; bf16 checkpoints
by the bounds `bf16_parity` derives.
"""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import lflow_dist
from lflow_dist import LangevinFlow, read_submission

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "Configs" / "tiny.yaml"
RTOL = 1e-5

# Every value of every architecture option at least once (the first case is the spec's
# defaults: encoderInput current, encoder forward, potential allPairs, potentialInput none,
# posterior initial, dynamics secondOrder, decoder transformer, decoderInput zvh,
# positionalEncoding none, factors 0, precision float32, weightAverage 0).
CASES = {
    "spec": [],
    "bidirectional-lagged-diagonal-spikes": ["encoder=bidirectional", "encoderInput=lagged", "potential=diagonal",
                                             "potentialInput=spikes"],
    "bidirectional-current-perStep-sinusoidal-factors": [
        "encoder=bidirectional", "encoderInput=current", "posterior=perStep", "positionalEncoding=sinusoidal",
        "factors=5"],
    "firstOrder-zv-perStep": ["dynamics=firstOrder", "decoderInput=zv", "posterior=perStep"],
    "linear-firstOrder-spikes-factors": ["decoder=linear", "dynamics=firstOrder", "potentialInput=spikes", "factors=4"],
    "linear-zv-lagged": ["decoder=linear", "decoderInput=zv", "encoderInput=lagged"],
    "physics-noiseless": ["temperature=0", "damping=0.3", "mass=2", "coupling=0.5", "dt=0.05", "groups=2",
                          "kernelSize=5", "heads=4"],
    "weightAverage": ["weightAverage=0.9", "epochs=3", "encoder=bidirectional", "positionalEncoding=sinusoidal"],
    "bf16": ["precision=bf16", "posterior=perStep", "potentialInput=spikes", "factors=6"],
    "energy-midpoint": ["stiffness=gram", "integrator=midpoint", "dt=0.5", "damping=0.05", "posterior=perStep",
                        "potentialInput=spikes"],
    "energy-midpoint-firstOrder": ["stiffness=gram", "integrator=midpoint", "dynamics=firstOrder", "dt=0.8", "coupling=2"],
}

PARITY = {}


def rel_diff(ours: dict, theirs: dict) -> float:
    assert sorted(ours) == sorted(theirs), (sorted(ours), sorted(theirs))
    worst = 0.0
    for key, reference in theirs.items():
        assert ours[key].shape == reference.shape, key
        assert np.all(np.isfinite(reference)) and np.all(reference > 0), key
        worst = max(worst, float(np.max(np.abs(ours[key].astype(np.float64) / reference - 1))))
    return worst


def record(case, what, value):
    PARITY.setdefault(case, {})[what] = value


# bf16 keeps 8 significant bits: round to nearest moves a value by at most U = 2^-8 of itself.
U = 2.0 ** -8
# Its RMS relative size for values spread over a binade (PrecisionTests.uRMS): 0.4247 U.
U_RMS = U * ((1 / np.log(2.0)) * (0.5 - 0.125) / 3) ** 0.5


def relative(ours: dict, theirs: dict) -> np.ndarray:
    """|ours / theirs - 1| of every rate, flattened."""
    return np.concatenate([np.abs(ours[k].astype(np.float64) / theirs[k] - 1).ravel() for k in sorted(theirs)])


def readout_bound(model: LangevinFlow, data) -> float:
    """2U max_i sum_k |W_ik y_k|: how far one log-rate could move if every operand of its readout
    product (the last bf16 product before the rate) were one bf16 spacing (<= 2U of itself) off."""
    t = lflow_dist.read_nlb(data)
    worst = 0.0
    with torch.no_grad():
        for spikes in (t["train_spikes_heldin"], t["eval_spikes_heldin"]):
            y = model.run(torch.as_tensor(spikes), 0)["readout_input"].abs().double()
            w = model.readout.weight.abs().double()
            worst = max(worst, float((y @ w.t()).max()))
    return 2 * U * worst


def bf16_parity(case, what, ours: dict, theirs: dict, bound: float):
    """lflow-dist and this package both round the same float32 values to bf16; those values
    agree to float32 parity (RTOL) but not bit for bit (other summation orders, other libm),
    so now and then one lands on the other side of a bf16 rounding boundary and its operand
    moves by one bf16 spacing (a "flip"). A value off by d flips with probability d / spacing,
    so the expected move, spacing x d / spacing = d, is what it was in float32: the mean
    relative difference of the rates stays <= RTOL. The largest one is a flip's: at most
    `readout_bound`, as if every operand of a rate's last product had flipped. A path that did
    not round, or rounded other operands, is off by the bf16 rounding itself in the mean
    (about 1e-3 here, see test_bf16_checkpoint) and fails the first bound."""
    r = relative(ours, theirs)
    record(case, f"{what} (mean)", float(r.mean()))
    record(case, f"{what} (max; bound {bound:.1e})", float(r.max()))
    assert r.mean() <= RTOL, f"{what}: mean relative difference {r.mean():.2e} > {RTOL}"
    assert r.max() <= bound, f"{what}: largest relative difference {r.max():.2e} > {bound:.2e}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, run_lflow, small_data):
    """case -> run directory, trained once per case."""
    cache = {}

    def get(case):
        if case not in cache:
            run_dir = tmp_path_factory.mktemp("run") / case
            overrides = ["epochs=1"] + CASES[case]
            args = ["train", "--config", TINY, "--data", small_data, "--run-dir", run_dir]
            for item in overrides:
                args += ["--set", item]
            log = run_lflow(*args)
            cache[case] = (run_dir, log)
        return cache[case]
    return get


@pytest.mark.parametrize("case", list(CASES))
def test_predict_parity(case, trained, run_lflow, small_data, tmp_path):
    run_dir, log = trained(case)
    best = run_dir / "best.h5"
    model = LangevinFlow.from_checkpoint(best)
    assert model.config.to_dict() == json.loads(h5py.File(best, "r").attrs["config"])
    # The model has exactly the checkpoint's tensors.
    with h5py.File(best, "r") as f:
        names = set()
        f["model"].visititems(lambda n, o: names.add(n) if hasattr(o, "shape") else None)
    assert names == set(model.state_dict())

    def agree(what, ours, theirs):
        if model.precision == "bf16":
            rel_diff(ours, theirs)      # the same arrays, finite and positive
            bf16_parity(case, what, ours, theirs, bound)
        else:
            diff = rel_diff(ours, theirs)
            record(case, what, diff)
            assert diff <= RTOL
    bound = readout_bound(model, small_data) if model.precision == "bf16" else None

    # Mean path.
    swift = tmp_path / "mean.h5"
    run_lflow("predict", "--checkpoint", best, "--data", small_data, "--out", swift, "--samples", 0)
    ours = model.predict_nlb(small_data, samples=0)
    (group, theirs), = read_submission(swift).items()
    agree("mean path", ours, theirs)

    # Sampled passes, keyed noise.
    swift = tmp_path / "sampled.h5"
    run_lflow("predict", "--checkpoint", best, "--data", small_data, "--out", swift, "--samples", 3)
    ours3 = model.predict_nlb(small_data, samples=3)
    agree("3 samples", ours3, read_submission(swift)[group])
    # Sampling does change the rates (the noise is really drawn), except without any noise.
    spread = rel_diff(ours3, ours)
    if case != "physics-noiseless":
        assert spread > 1e-4

    # The submission train wrote (best weights, the config's predictionSamples, its seed).
    agree("train's submission", model.predict_nlb(small_data), read_submission(run_dir / "submission.h5")[group])

    # The submission file itself: same keys, shapes and group as lflow-dist's.
    ours_path = tmp_path / "ours.h5"
    lflow_dist.write_submission(ours_path, ours, lflow_dist.submission_group(small_data))
    with h5py.File(ours_path, "r") as a, h5py.File(tmp_path / "mean.h5", "r") as b:
        assert list(a.keys()) == list(b.keys())
        for key in b[group]:
            assert a[group][key].shape == b[group][key].shape and a[group][key].dtype == b[group][key].dtype


@pytest.mark.parametrize("case", list(CASES))
def test_inspect_float64(case, trained, run_lflow, small_data, tmp_path):
    """`lflow-dist inspect` runs the mean path in float64; so does the model in torch.float64."""
    run_dir, _ = trained(case)
    state = tmp_path / "state.h5"
    tensors = lflow_dist.read_nlb(small_data)
    trials = 6
    run_lflow("inspect", "--checkpoint", run_dir / "best.h5", "--data", small_data, "--trials", trials, "--out", state)
    model = LangevinFlow.from_checkpoint(run_dir / "best.h5", dtype=torch.float64, precision="float32")
    forward_bins = tensors["train_spikes_heldin_forward"].shape[1]
    with torch.no_grad():
        out = model.run(torch.from_numpy(tensors["train_spikes_heldin"][:trials]).double(), forward_bins)
    with h5py.File(state, "r") as f:
        log_rates, latents = f["log_rates"][:], f["latents"][:]
    diff = float(np.max(np.abs(out["log_rates"].numpy() - log_rates)))
    record(case, "float64 log-rates (abs)", diff)
    assert diff <= 1e-9
    assert float(np.max(np.abs(out["latents"].numpy() - latents))) <= 1e-9
    check_loss_and_gradients(case, model, tensors, trials, state)


def check_loss_and_gradients(case, model, tensors, trials, state):
    """model.elbo in eval mode is inspect's deterministic loss; autograd gives its gradients."""
    model.zero_grad()
    loss = model.elbo(*(tensors[k][:trials] for k in ("train_spikes_heldin", "train_spikes_heldout",
                                                       "train_spikes_heldin_forward", "train_spikes_heldout_forward")))
    loss["total"].backward()
    with h5py.File(state, "r") as f:
        for part in ("reconstruction", "kl", "total"):
            assert abs(loss[part].item() - f[f"loss/{part}"][()]) <= 1e-9 * max(1.0, abs(f[f"loss/{part}"][()])), part
        worst = 0.0
        for name, parameter in model.named_parameters():
            reference = f[f"grad/{name}"][:]
            scale = max(1.0, float(np.max(np.abs(reference))))
            worst = max(worst, float(np.max(np.abs(parameter.grad.numpy() - reference))) / scale)
    record(case, "float64 loss gradients (rel. to max(1, |g|max))", worst)
    assert worst <= 1e-9


def test_missing_bins(trained, run_lflow, small_data, tmp_path):
    """NaN (missing) counts: zero in the input, masked in the loss, as lflow-dist reads them."""
    run_dir, _ = trained("bidirectional-lagged-diagonal-spikes")
    data = tmp_path / "holes.h5"
    rng = np.random.default_rng(0)
    with h5py.File(small_data, "r") as src, h5py.File(data, "w") as dst:
        for key in src:
            if isinstance(src[key], h5py.Dataset):
                values = src[key][()]
                if key.startswith(("train_spikes", "eval_spikes")):
                    values = values.astype(np.float32)
                    values[rng.random(values.shape) < 0.1] = np.nan
                dst[key] = values
        for k, v in src.attrs.items():
            dst.attrs[k] = v
    swift = tmp_path / "sub.h5"
    run_lflow("predict", "--checkpoint", run_dir / "best.h5", "--data", data, "--out", swift, "--samples", 2)
    model = LangevinFlow.from_checkpoint(run_dir / "best.h5")
    (group, theirs), = read_submission(swift).items()
    diff = rel_diff(model.predict_nlb(data, samples=2), theirs)
    record("missing bins (NaN)", "2 samples", diff)
    assert diff <= RTOL
    state = tmp_path / "state.h5"
    run_lflow("inspect", "--checkpoint", run_dir / "best.h5", "--data", data, "--trials", 5, "--out", state)
    model64 = LangevinFlow.from_checkpoint(run_dir / "best.h5", dtype=torch.float64)
    check_loss_and_gradients("missing bins (NaN)", model64, lflow_dist.read_nlb(data), 5, state)


def test_training_mode_loss_runs(trained, small_data):
    """train() mode: coordinated dropout, dropout and sampling from torch's generator; one
    optimiser step lowers nothing in particular but must give finite gradients everywhere."""
    run_dir, _ = trained("bidirectional-current-perStep-sinusoidal-factors")
    model = LangevinFlow.from_checkpoint(run_dir / "best.h5").train()
    t = lflow_dist.read_nlb(small_data)
    torch.manual_seed(0)
    loss = model.elbo(t["train_spikes_heldin"], t["train_spikes_heldout"], t["train_spikes_heldin_forward"],
                      t["train_spikes_heldout_forward"])
    loss["total"].backward()
    assert torch.isfinite(loss["total"])
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.all(torch.isfinite(parameter.grad)), name
    model.eval()
    a = model.elbo(t["train_spikes_heldin"], t["train_spikes_heldout"])["total"].item()
    b = model.elbo(t["train_spikes_heldin"], t["train_spikes_heldout"])["total"].item()
    assert a == b     # eval mode is deterministic


def test_bf16_checkpoint(trained, run_lflow, small_data):
    """A bf16 run's checkpoint holds float32 weights. lflow-dist runs bf16 on every CPU (on
    AVX512-BF16 or emulated, and says which when emulated); precision 'auto' follows the config.
    precision='bf16' really rounds: its rates differ from precision='float32' by the bf16
    rounding, within the bound PrecisionTests derives: ||log-rates difference|| / ||log-rates||
    <= 2 sqrt(2D) U_RMS for D bf16 products on the path (here 12: encoder input, per-step heads,
    the input potential's two, six in the decoder layer, factors, readout), and more than
    U_RMS / 10 (float32 alone differs by about 1e-7)."""
    run_dir, log = trained("bf16")
    with h5py.File(run_dir / "best.h5", "r") as f:
        assert all(f["model"][k].dtype == np.float32 for k in f["model"] if hasattr(f["model"][k], "dtype"))
    auto = LangevinFlow.from_checkpoint(run_dir / "best.h5")
    assert auto.config.precision == "bf16" and auto.precision == "bf16"
    if lflow_dist.model.bf16_path() == "emulated":
        assert "runs emulated" in log, log[-2000:]
    else:
        assert "emulated" not in log, log[-2000:]
    float32 = LangevinFlow.from_checkpoint(run_dir / "best.h5", precision="float32")
    a = auto.predict_nlb(small_data, samples=0)
    b = float32.predict_nlb(small_data, samples=0)
    la = np.concatenate([np.log(a[k].astype(np.float64)).ravel() for k in sorted(b)])
    lb = np.concatenate([np.log(b[k].astype(np.float64)).ravel() for k in sorted(b)])
    norm = float(np.linalg.norm(la - lb) / np.linalg.norm(lb))
    bound = 2 * (2 * 12) ** 0.5 * U_RMS
    record("bf16", f"bf16 vs float32 log-rates, relative norm (bound {bound:.1e}; not a parity number)", norm)
    assert U_RMS / 10 < norm < bound


def test_weight_average_checkpoints(trained, run_lflow, small_data, tmp_path):
    """With weightAverage, best.h5 holds the average's best weights (what predict uses); a
    resumable ckpt-*.h5 holds the live weights under model/ (what predict uses on it), and the
    average and the best weights as groups of their own."""
    run_dir, _ = trained("weightAverage")
    ckpt = sorted(run_dir.glob("ckpt-*.h5"))[-1]
    with h5py.File(ckpt, "r") as f:
        assert {"model", "best_model", "weight_average"} <= set(f.keys())
    live = LangevinFlow.from_checkpoint(ckpt)
    average = LangevinFlow.from_checkpoint(ckpt, group="weight_average")
    best = LangevinFlow.from_checkpoint(run_dir / "best.h5")
    assert any(not torch.equal(a, b) for a, b in zip(live.state_dict().values(), average.state_dict().values()))
    swift = tmp_path / "ckpt.h5"
    run_lflow("predict", "--checkpoint", ckpt, "--data", small_data, "--out", swift, "--samples", 0)
    (group, theirs), = read_submission(swift).items()
    diff = rel_diff(live.predict_nlb(small_data, samples=0), theirs)
    record("weightAverage", "ckpt model/ (live) mean path", diff)
    assert diff <= RTOL
    # best.h5's weights are the best weights of the last checkpoint.
    ckpt_best = LangevinFlow.from_checkpoint(ckpt, group="best_model")
    for name, value in best.state_dict().items():
        assert torch.equal(value, ckpt_best.state_dict()[name]), name


def test_builtin_lorenz(tmp_path, run_lflow):
    """`lflow-dist train` with no --data: the built-in Lorenz data and config (lagged input,
    per-step posterior), shrunk to a tiny width."""
    run_lflow("train", "--set", "hidden=8", "--set", "feedForward=16", "--set", "epochs=1", "--set",
              "predictionSamples=2", "--run-dir", tmp_path / "run", cwd=tmp_path)
    data = tmp_path / "Checkpoints" / "lorenz.h5"
    model = LangevinFlow.from_checkpoint(tmp_path / "run" / "best.h5")
    assert model.config.posterior == "perStep" and model.config.encoderInput == "lagged"
    theirs = read_submission(tmp_path / "run" / "submission.h5")["lorenz"]
    diff = rel_diff(model.predict_nlb(data), theirs)
    record("built-in lorenz", "train's submission (2 samples)", diff)
    assert diff <= RTOL


def test_philox_known_answers():
    """Random123's known-answer vectors for Philox4x32-10."""
    assert [int(w) for w in lflow_dist.philox4x32(0, 0, 0, 0, 0, 0)] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    ones = 0xFFFFFFFF
    assert [int(w) for w in lflow_dist.philox4x32(ones, ones, ones, ones, ones, ones)] == \
        [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert [int(w) for w in lflow_dist.philox4x32(0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822,
                                                  0x299F31D0)] == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_noise_offsets_are_one_stream():
    """Draws first..first+count are the same numbers whatever the block alignment."""
    s = lflow_dist.NoiseStream(seed=7, purpose=5, epoch=3, step=2)
    whole = s.normal([0, 9], 0, 23)
    for first in (1, 2, 3, 5, 8):
        np.testing.assert_array_equal(s.normal([0, 9], first, 23 - first), whole[:, first:])
    np.testing.assert_array_equal(s.uniform([4], 3, 6), s.uniform([4], 0, 9)[:, 3:])


@pytest.fixture(scope="session", autouse=True)
def _report_parity(request):
    yield
    if PARITY:
        lines = ["", "parity with lflow-dist (largest relative rate difference unless noted):"]
        for case, values in PARITY.items():
            lines.append(f"  {case}: " + ", ".join(f"{k} {v:.2e}" for k, v in values.items()))
        text = "\n".join(lines)
        print(text)
        out = os.environ.get("LFLOW_PARITY_REPORT")
        if out:
            with open(out, "w") as f:
                json.dump(PARITY, f, indent=1)


def test_ensemble(trained, run_lflow, small_data, tmp_path):
    """`lflow-dist predict` with two --checkpoint: the mean of the models' rates."""
    a, _ = trained("spec")
    b, _ = trained("firstOrder-zv-perStep")
    swift = tmp_path / "ensemble.h5"
    run_lflow("predict", "--checkpoint", a / "best.h5", "--checkpoint", b / "best.h5", "--data", small_data,
              "--out", swift, "--samples", 2)
    ours_path = tmp_path / "ours.h5"
    ours = lflow_dist.predict_file([a / "best.h5", b / "best.h5"], small_data, out=ours_path, samples=2)
    (group, theirs), = read_submission(swift).items()
    diff = rel_diff(ours, theirs)
    record("ensemble of 2", "2 samples", diff)
    assert diff <= RTOL
    assert list(read_submission(ours_path)) == [group]


def test_read_run_and_latents(trained, small_data):
    """read_run gives the metrics and latents.h5; the latents (mean-path z, v, h and the force
    z A of the validation trials) are the model's run() on those trials."""
    run_dir, _ = trained("spec")
    run = lflow_dist.read_run(run_dir)
    rows = run["metrics"]
    assert len(rows) == 1 and "epoch" in (rows.columns if hasattr(rows, "columns") else rows[0])
    assert run["config"]["hidden"] == 8 and run["best"].endswith("best.h5")
    latents = run["latents"]
    trials = latents["valid/trials"].astype(int)
    model = LangevinFlow.from_checkpoint(run["best"])
    t = lflow_dist.read_nlb(small_data)
    with torch.no_grad():
        out = model.run(torch.from_numpy(t["train_spikes_heldin"][trials]), t["train_spikes_heldin_forward"].shape[1])
    force = torch.matmul(out["z"], out["force_matrix"])
    for name, ours in (("z", out["z"]), ("v", out["v"]), ("h", out["h"]), ("force", force)):
        theirs = latents[f"valid/{name}"]
        scale = max(1.0, float(np.max(np.abs(theirs))))
        assert float(np.max(np.abs(ours.numpy() - theirs))) <= 1e-5 * scale, name
