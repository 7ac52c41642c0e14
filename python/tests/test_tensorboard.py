"""lflow-dist's TensorBoard event files, read back by the tensorboard package's own reader
(EventAccumulator), against metrics.jsonl and a search's tables."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# metrics.jsonl keys and the scalar tags that carry them.
TAGS = {
    "trainLoss": "loss/train", "trainReconstruction": "loss/train_reconstruction", "trainKL": "loss/train_kl",
    "validLoss": "loss/valid", "validReconstruction": "loss/valid_reconstruction", "validKL": "loss/valid_kl",
    "validHeldOutNLL": "valid/heldout_nll", "validMetric": "valid/metric", "learningRate": "schedule/learning_rate",
    "klWeight": "schedule/kl_weight", "weightDecay": "schedule/weight_decay", "gradNorm": "train/grad_norm",
}


def load(run):
    accumulator = event_accumulator.EventAccumulator(str(run), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return accumulator


def records(run):
    return [json.loads(line) for line in Path(run, "metrics.jsonl").read_text().splitlines()]


def check_scalars(run):
    """Every epoch of metrics.jsonl, once, at step epoch + 1, with the same values (float32)."""
    accumulator, lines = load(run), records(run)
    for key, tag in TAGS.items():
        events = accumulator.Scalars(tag)
        assert [e.step for e in events] == [r["epoch"] + 1 for r in lines], tag
        for e, r in zip(events, lines):
            assert e.value == pytest.approx(r[key], rel=1e-6, abs=1e-30), (tag, e.step)
    return accumulator


def test_training_scalars_and_final_scores(tmp_path, run_lflow, small_data):
    run = tmp_path / "run"
    run_lflow("train", "--config", REPO / "Configs/tiny.yaml", "--data", small_data, "--run-dir", run, "--set", "epochs=5",
              cwd=REPO)
    accumulator = check_scalars(run)
    validation = json.loads(Path(run, "validation.json").read_text())
    co_bps = accumulator.Scalars("final/co_bps")
    assert len(co_bps) == 1 and co_bps[0].step == 5
    assert co_bps[0].value == pytest.approx(validation["co-bps"], rel=1e-6)
    assert any(tag.startswith("latent/") for tag in accumulator.Tags()["scalars"]), "synth data has truth: the latent probe is logged"


def test_a_killed_run_resumed_shows_each_epoch_once(tmp_path, lflow_bin, small_data):
    """Epochs logged after the last checkpoint of a killed session are dropped by the resumed
    session's restart event, as TensorBoard does for a restarted TensorFlow job."""
    run = tmp_path / "run"
    args = [lflow_bin, "train", "--config", REPO / "Configs/tiny.yaml", "--data", small_data, "--run-dir", run,
            "--set", "epochs=400", "--set", "checkpointEvery=50"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    process = subprocess.Popen([str(a) for a in args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = len(Path(run, "metrics.jsonl").read_text().splitlines()) if Path(run, "metrics.jsonl").exists() else 0
        if done >= 60:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    logged = len(load(run).Scalars("valid/heldout_nll"))
    assert logged >= 60, "the kill came after the first checkpoint (epoch 50) and later epochs were logged"
    resumed = subprocess.run([str(a) for a in args[:-4]] + ["--set", "epochs=70", "--set", "checkpointEvery=50"], cwd=REPO, env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout
    check_scalars(run)


def test_search_hparams(tmp_path, run_lflow, small_data):
    """The search's experiment (its axes and metrics) at the root, and a session per trial with
    its values, its status and the metrics the dashboard tabulates."""
    search = tmp_path / "search"
    run_lflow("search", "--config", REPO / "Configs/tiny.yaml", "--data", small_data, "--run-dir", search,
              "--grid", "learningRate=0.003,0.01", "--grid", "damping=0.3,0.8", "--set", "epochs=3", cwd=REPO)
    root = load(search).PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(root["_hparams_/experiment"]).experiment
    assert [h.name for h in experiment.hparam_infos] == ["learningRate", "damping"]
    assert [v.number_value for v in experiment.hparam_infos[1].domain_discrete.values] == [0.3, 0.8]
    assert "final/co_bps" in [m.name.tag for m in experiment.metric_infos]
    rows = list(__import__("csv").DictReader(Path(search, "results.csv").read_text().splitlines()))
    assert len(rows) == 4
    for row in rows:
        trial = search / "trials" / row["trial"]
        accumulator = load(trial)
        content = accumulator.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["learningRate"].number_value == float(row["learningRate"])
        assert start.hparams["damping"].number_value == float(row["damping"])
        end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
        assert end.status == 1  # STATUS_SUCCESS
        assert accumulator.Scalars("final/co_bps")[-1].value == pytest.approx(float(row["valid_co_bps"]), rel=1e-6)
        check_scalars(trial)


def test_pbt_sessions(tmp_path, run_lflow, small_data):
    """PBT: a session per member and generation, with the member and its explored values."""
    search = tmp_path / "pbt"
    run_lflow("search", "--config", REPO / "Configs/tiny.yaml", "--data", small_data, "--run-dir", search, "--strategy", "pbt",
              "--population", "2", "--generation-epochs", "2", "--set", "epochs=4", "--explore", "learningRate=0.001:0.03", cwd=REPO)
    rows = list(__import__("csv").DictReader(Path(search, "results.csv").read_text().splitlines()))
    assert len(rows) == 4
    for row in rows:
        run = search / "members" / f"m{int(row['member']):02d}" / f"g{int(row['generation']):03d}"
        content = load(run).PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["member"].number_value == float(row["member"])
        assert start.hparams["learningRate"].number_value == pytest.approx(float(row["learningRate"]))
