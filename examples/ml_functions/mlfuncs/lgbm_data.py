"""LightGBM on data passed by reference: train from a CSV data set, predict with the model file.

Upload a CSV (`suanwang data put train.csv`), then publish
``{"function": "lgbm_train_csv", "args": [{"__data__": "<csv id>"}]}``: the function gets a
local ``pathlib.Path``, writes ``model.txt`` in its working directory and returns its Path, so
the model is stored in GridFS and the task shows ``result_ref``. Pass that model on with
``{"function": "lgbm_predict_csv", "args": [{"__data__": "<model id>"}, {"__data__": "<csv id>"}]}``.
"""
from __future__ import annotations

from pathlib import Path


def write_csv(path, n_samples: int = 2000, n_features: int = 8, seed: int = 0) -> Path:
    """A reproducible data set with a header ``f0,…,label`` (for trying the functions out)."""
    import numpy as np

    from mlfuncs.lgbm import make_data

    x, y = make_data(n_samples, n_features, seed)
    header = ",".join([f"f{i}" for i in range(n_features)] + ["label"])
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.6g")
    return Path(path)


def _read(path, label: str | None):
    import numpy as np

    with open(path) as f:
        names = f.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if label is None or label not in names:
        return table, None, names
    column = names.index(label)
    return np.delete(table, column, axis=1), table[:, column], [n for n in names if n != label]


def train_csv(dataset: Path, label: str = "label", num_rounds: int = 50, learning_rate: float = 0.1,
              seed: int = 0, num_threads: int = 1) -> Path:
    """Train a binary classifier on the CSV's columns (``label`` is the target); returns the model file."""
    import lightgbm as lgb

    from suanwang import Permanent

    x, y, names = _read(dataset, label)
    if y is None:
        raise Permanent(f"the data set has no column {label!r}")
    params = {"objective": "binary", "learning_rate": float(learning_rate), "num_leaves": 15, "seed": int(seed),
              "deterministic": True, "num_threads": int(num_threads), "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, label=y, feature_name=names), num_boost_round=int(num_rounds))
    booster.save_model("model.txt")  # the attempt's own working directory
    return Path("model.txt")


def predict_csv(model: Path, dataset: Path, label: str | None = "label") -> dict:
    """Score the CSV with a model file; with a label column, also its AUC and accuracy."""
    import lightgbm as lgb
    import numpy as np

    booster = lgb.Booster(model_file=str(model))
    x, y, _ = _read(dataset, label)
    scores = booster.predict(x)
    out = {"n": int(len(scores)), "mean_score": round(float(np.mean(scores)), 6), "trees": booster.num_trees()}
    if y is not None:
        order = np.argsort(scores)
        ranks = np.empty(len(scores))
        ranks[order] = np.arange(1, len(scores) + 1)
        positives = y == 1
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        auc = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1)
        out.update(auc=round(float(auc), 6), accuracy=round(float(np.mean((scores > 0.5) == positives)), 6))
    return out
