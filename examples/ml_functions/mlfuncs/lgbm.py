"""Train a LightGBM classifier on generated data and return its validation metric."""
from __future__ import annotations


def make_data(n_samples: int, n_features: int, seed: int):
    """A reproducible binary problem: a noisy linear rule plus one interaction."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, n_features))
    weights = rng.normal(size=n_features)
    logits = x @ weights + 1.5 * x[:, 0] * x[:, 1] + rng.normal(scale=0.5, size=n_samples)
    return x, (logits > 0).astype(int)


def train(n_samples: int = 2000, n_features: int = 10, num_rounds: int = 50, learning_rate: float = 0.1,
          seed: int = 0, num_threads: int = 1) -> dict:
    """Fit on 80 % of the data, score AUC on the other 20 %; the result is plain JSON."""
    import lightgbm as lgb
    import numpy as np

    x, y = make_data(int(n_samples), int(n_features), int(seed))
    cut = int(len(y) * 0.8)
    params = {"objective": "binary", "metric": "auc", "learning_rate": float(learning_rate), "num_leaves": 15,
              "seed": int(seed), "deterministic": True, "num_threads": int(num_threads), "verbose": -1}
    train_set = lgb.Dataset(x[:cut], label=y[:cut])
    valid_set = lgb.Dataset(x[cut:], label=y[cut:], reference=train_set)
    evals: dict = {}
    booster = lgb.train(params, train_set, num_boost_round=int(num_rounds), valid_sets=[valid_set],
                        valid_names=["valid"], callbacks=[lgb.record_evaluation(evals)])
    predicted = booster.predict(x[cut:])
    accuracy = float(np.mean((predicted > 0.5) == y[cut:]))
    return {"metric": "auc", "valid_auc": round(float(evals["valid"]["auc"][-1]), 6),
            "valid_accuracy": round(accuracy, 6), "rounds": booster.current_iteration(),
            "n_train": cut, "n_valid": len(y) - cut, "lightgbm": lgb.__version__}
