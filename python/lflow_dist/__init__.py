"""lflow_dist: load lflow-dist checkpoints into PyTorch and predict as `lflow-dist predict` does.

    import lflow_dist
    model = lflow_dist.LangevinFlow.from_checkpoint("Checkpoints/lorenz/best.h5")
    rates = model.predict_nlb("Checkpoints/lorenz.h5", samples=0)      # the submission dict
    lflow_dist.write_submission("sub.h5", rates, group="lorenz")
"""

from .config import Config
from .data import read_nlb, read_run, read_submission, submission_group, write_submission
from .model import LangevinFlow, TransformerLayer, positional_encoding
from .noise import NoiseStream, philox4x32, prediction_noise

__version__ = "0.1.0"

__all__ = [
    "Config", "LangevinFlow", "TransformerLayer", "positional_encoding", "read_nlb", "read_run", "read_submission",
    "submission_group", "write_submission", "NoiseStream", "philox4x32", "prediction_noise", "predict_file",
]


def predict_file(checkpoint, data, out=None, samples=None, dataset_name=None, precision=None):
    """`lflow-dist predict --checkpoint CKPT --data DATA --out OUT [--samples N]` in Python:
    returns the submission dict and writes it to `out` when given. `checkpoint` may be a list
    (an ensemble, as repeated --checkpoint): the mean of the models' rates, each model with its
    own config's seed and, unless `samples` is given, its own predictionSamples."""
    import numpy as np

    paths = [checkpoint] if isinstance(checkpoint, (str, bytes)) or hasattr(checkpoint, "__fspath__") else list(checkpoint)
    tensors = read_nlb(data)
    total = None
    for path in paths:
        rates = LangevinFlow.from_checkpoint(path, precision=precision).predict_nlb(tensors, samples=samples)
        total = rates if total is None else {k: total[k] + rates[k] for k in total}     # float32 sums, as lflow-dist
    count = np.float32(len(paths))
    rates = {k: (v / count).astype(np.float32) for k, v in total.items()}
    if out is not None:
        write_submission(out, rates, submission_group(tensors, dataset_name))
    return rates
