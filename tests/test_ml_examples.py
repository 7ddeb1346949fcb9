"""The example ML function repository (examples/ml_functions): registered from a real git
repository, resolved into a worker's cache and run: LightGBM training and a PyTorch matmul."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fsm.store import Claimant
from fsm.store.spec import validate
from registry import catalog, loader
from registry.resolver import GitResolver, load
from registry.service import Registry
from tests.test_registry import ADMIN, git

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ml_functions"
FUNCTIONS = [  # code, entrypoint, extra registration fields
    ("lgbm_train", "mlfuncs.lgbm:train", {"public": True}),
    ("matmul", "mlfuncs.matmul:matmul", {}),
    ("matmul_gpu", "mlfuncs.matmul:matmul_gpu", {"requires": {"gpus": 1}}),
]


@pytest.fixture(scope="module")
def example_repo(tmp_path_factory) -> Path:
    """The example sources committed to a fresh git repository, tagged v1."""
    path = tmp_path_factory.mktemp("repos") / "ml_functions"
    shutil.copytree(EXAMPLES, path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "ML examples")
    git(path, "tag", "v1")
    return path


@pytest.fixture
def resolver(db, tmp_path, example_repo) -> GitResolver:
    registry = Registry(db, str(tmp_path / "server-cache"), roots=[str(example_repo.parent)])
    registry.add_repo(ADMIN, str(example_repo), name="ml")
    for code, entrypoint, extra in FUNCTIONS:
        registry.register(ADMIN, {"repo": "ml", "ref": "v1", "entrypoint": entrypoint, "code": code,
                                  "version": "1.0", "description": f"example {code}",
                                  "developer_name": "examples", **extra})
    yield GitResolver(db, tmp_path / "worker-cache")
    loader._switch_to(None)


def test_lightgbm_training_returns_its_validation_metric(resolver, db):
    version = catalog.resolve_version(db, "lgbm_train", None, "business")
    train = load(resolver.prepare("lgbm_train", version))
    result = train(n_samples=1500, num_rounds=30, seed=1)
    assert result["metric"] == "auc" and 0.7 < result["valid_auc"] <= 1.0
    assert result["rounds"] == 30 and result["n_train"] == 1200 and result["n_valid"] == 300
    assert train(n_samples=1500, num_rounds=30, seed=1) == result  # deterministic: redundant runs agree


def test_pytorch_matmul_uses_cuda_when_present_else_the_cpu(resolver):
    import torch

    matmul = load(resolver.prepare("matmul", "1.0"))
    result = matmul(n=200, seed=3)
    assert result["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(3)
    a = torch.randint(-3, 4, (200, 200), generator=generator).to(torch.int64)
    b = torch.randint(-3, 4, (200, 200), generator=generator).to(torch.int64)
    assert result["checksum"] == int((a @ b).sum()) and result["trace"] == int(torch.trace(a @ b))
    with pytest.raises(ValueError, match="between 1 and 1000"):
        matmul(n=5000)


def test_the_gpu_variant_stays_queued_without_a_gpu(resolver, db, store):
    import torch

    # Given a task of the GPU variant published with the version's declared defaults,
    version = catalog.resolve_version(db, "matmul_gpu", None, "super")
    body = {"function": "matmul_gpu", "version": version, "kwargs": {"n": 100},
            **catalog.task_defaults(db, "matmul_gpu", version)}
    assert body["requires"]["gpus"] == 1
    store.tasks.insert([store.tasks.document(validate(body), "sue")])
    # a worker without a GPU never claims it,
    assert store.tasks.claim_next(Claimant("cpu-box", gpus=0)) is None
    assert store.tasks.counts_by_status().get("queued") == 1
    # a GPU worker does, and the function runs there (and refuses clearly elsewhere).
    claim = store.tasks.claim_next(Claimant("gpu-box", gpus=1))
    assert claim is not None and claim.task["function"] == "matmul_gpu"
    fn = load(resolver.prepare(claim.task["function"], claim.task["version"]))
    if torch.cuda.is_available():
        assert fn(**claim.task["kwargs"])["device"] == "cuda"
    else:
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            fn(**claim.task["kwargs"])
