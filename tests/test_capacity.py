"""fsm.capacity: what fits a worker's free cores and GPUs, and which GPUs a task gets (pure)."""
import pytest

from fsm.capacity import Capacity, Gpu


def box(cpus=16, gpu_mem=(24.0, 24.0, 24.0, 24.0)):
    return Capacity(cpus=cpus, gpus=tuple(Gpu(i, m) for i, m in enumerate(gpu_mem)))


def test_cores_are_shared_out_until_none_are_left():
    cap = box(cpus=4, gpu_mem=())
    assert cap.hold("a", {"cpus": 3}) == []
    assert not cap.fits({"cpus": 2}) and cap.fits({"cpus": 1}) and cap.fits({})  # default: one core
    cap.release("a")
    assert cap.fits({"cpus": 4}) and not cap.fits({"cpus": 5})


def test_one_four_gpu_task_or_four_one_gpu_tasks():
    cap = box()
    assert cap.hold("big", {"gpus": 4}) == [0, 1, 2, 3]
    assert not cap.fits({"gpus": 1}) and not cap.fits({"gpu_mem_gb": 1})
    cap.release("big")
    assert [cap.hold(f"t{i}", {"gpus": 1}) for i in range(4)] == [[0], [1], [2], [3]]
    assert not cap.fits({"gpus": 1})


def test_sharing_only_between_tasks_that_both_share():
    cap = box(gpu_mem=(24.0, 24.0))
    assert cap.hold("s1", {"gpu_mem_gb": 10}) == [0]
    assert cap.hold("s2", {"gpu_mem_gb": 10}) == [0]   # packs onto the same GPU
    assert cap.hold("s3", {"gpu_mem_gb": 10}) == [1]   # 4 GB left on GPU 0: next one
    assert not cap.fits({"gpus": 1})                    # no GPU is free whole any more
    cap.release("s3")
    assert cap.hold("w", {"gpus": 1}) == [1]
    assert not cap.fits({"gpu_mem_gb": 8})             # GPU 1 is held whole, GPU 0 has 4 GB
    assert cap.fits({"gpu_mem_gb": 4})


@pytest.mark.parametrize("requires, fits", [
    ({"gpus": 1, "gpu_mem_gb": 40}, False),   # whole GPUs with at least 40 GB each: none
    ({"gpus": 1, "gpu_mem_gb": 24}, True),
    ({"gpus": 5}, False),
    ({"cpus": 16, "gpus": 4}, True),
    ({"cpus": 17}, False),
])
def test_fit_table(requires, fits):
    assert box().fits(requires) is fits


def test_claim_limits_follow_what_is_held():
    cap = box(cpus=8, gpu_mem=(24.0, 16.0))
    assert cap.claim_limits() == {"cpus": 8.0, "gpus": 2, "gpu_mem_gb": 24.0}
    cap.hold("a", {"cpus": 2, "gpu_mem_gb": 20})
    assert cap.claim_limits() == {"cpus": 6.0, "gpus": 1, "gpu_mem_gb": 16.0}
