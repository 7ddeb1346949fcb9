"""Multiply two random matrices with PyTorch: on CUDA when present, else on the CPU.

The matrices hold small integers, so the product is exact in float32 on any device and
redundant runs on different machines agree on the checksum.
"""
from __future__ import annotations


def _product(n: int, seed: int, device: str) -> dict:
    import torch

    if not 1 <= n <= 1000:  # keeps every entry of C below 2**24: exact in float32
        raise ValueError(f"n must be between 1 and 1000, got {n}")
    generator = torch.Generator().manual_seed(int(seed))
    a = torch.randint(-3, 4, (n, n), generator=generator).float().to(device)
    b = torch.randint(-3, 4, (n, n), generator=generator).float().to(device)
    c = (a @ b).to(torch.int64)  # exact integers; summed as int64 so the checksum is exact too
    if device == "cuda":
        torch.cuda.synchronize()
    return {"n": n, "device": device, "checksum": int(c.sum().item()), "trace": int(torch.trace(c).item()),
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None}


def matmul(n: int = 512, seed: int = 0) -> dict:
    """C = A @ B for two n x n matrices; uses the GPU when this machine has one."""
    import torch

    return _product(int(n), seed, "cuda" if torch.cuda.is_available() else "cpu")


def matmul_gpu(n: int = 1000, seed: int = 0) -> dict:
    """The GPU variant: register it with requires {gpus: 1}; it refuses to run without CUDA."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("matmul_gpu needs a CUDA GPU; register it with requires {\"gpus\": 1} so that only "
                           "GPU workers claim it")
    return _product(int(n), seed, "cuda")
