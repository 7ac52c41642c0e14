"""Fixtures: the lflow-dist binary, a small synthetic NLB file, and tiny trained runs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))     # the package, also when it is not pip-installed

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def find_binary():
    """LFLOW_DIST_BIN, else the repository's build (release before debug), else None."""
    explicit = os.environ.get("LFLOW_DIST_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            pytest.fail(f"LFLOW_DIST_BIN={explicit} is not an executable")
        return explicit
    candidates = [REPO / ".build/release/lflow-dist", REPO / ".build/debug/lflow-dist"]
    if shutil.which("swift"):
        for args in (["-c", "release"], []):
            try:
                path = subprocess.run(["swift", "build", *args, "--show-bin-path"], cwd=REPO, capture_output=True,
                                      text=True, timeout=120).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                continue
            if path:
                candidates.append(Path(path) / "lflow-dist")
    for candidate in candidates:
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def lflow_bin():
    binary = find_binary()
    if binary is None:
        pytest.fail("no lflow-dist binary: build it (swift build -c release) or set LFLOW_DIST_BIN")
    return binary


@pytest.fixture(scope="session")
def run_lflow(lflow_bin):
    def run(*args, cwd=None):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        result = subprocess.run([lflow_bin, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                                timeout=300)
        if result.returncode != 0:
            raise AssertionError(f"lflow-dist {' '.join(map(str, args))} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout + result.stderr
    return run


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, run_lflow):
    """A small Lorenz NLB file with eval and forward bins (16 train + 4 eval trials... see synth)."""
    directory = tmp_path_factory.mktemp("data")
    path = directory / "small.h5"
    run_lflow("synth", "--out", path, "--conditions", "4", "--trials-per-condition", "5", "--bins", "14",
              "--forward-bins", "4", "--neurons", "11", "--held-out", "3", "--seed", "3")
    return path


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    import torch
    torch.set_num_threads(1)


def pytest_report_header(config):
    from lflow_dist.model import bf16_path
    return f"bf16 path of lflow-dist here: {bf16_path()} (precision='bf16' in this package always rounds in software)"
