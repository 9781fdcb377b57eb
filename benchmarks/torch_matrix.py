#!/usr/bin/env python3
"""torch.matmul (float32) and a float32 Newton-Schulz in torch, side by side with fusedopt's
MatrixProductBenchmark and MuonStepBenchmark (docs/muon.md, "Speed").

Run with Debian's python3-torch: /usr/bin/python3 benchmarks/torch_matrix.py [--threads 1 2]
Prints torch's version, its BLAS, and per size and thread count the median of several timed
calls (after warm-up calls): milliseconds and GFLOP/s (2 n^3 per product).
"""
import argparse
import statistics
import time

import torch


def timed(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def newton_schulz(x, steps=5, a=3.4445, b=-4.7750, c=2.0315, eps=1e-7):
    """torch/optim/_muon.py's _zeropower_via_newtonschulz (PyTorch 2.9), kept in float32 as
    fusedopt's exact mode is (PyTorch runs it in bf16)."""
    if x.size(0) > x.size(1):
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, update, x, beta=a)
    return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--shapes", nargs="+", default=["768x768", "768x3072", "3072x768"])
    args = parser.parse_args()
    print("torch", torch.__version__)
    blas = [line.strip() for line in torch.__config__.show().splitlines() if "BLAS_INFO" in line]
    print("build:", blas[0][:120] if blas else "unknown")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in args.sizes:
            p = torch.randn(n, n)
            q = torch.randn(n, n)
            repeats = 5 if n <= 1024 else 3
            seconds = timed(lambda: torch.matmul(p, q), repeats, 1)
            print(f"matmul n={n} threads={threads}: {seconds * 1e3:.1f} ms, {2 * n ** 3 / seconds / 1e9:.1f} GFLOP/s")
        for shape in args.shapes:
            rows, cols = (int(v) for v in shape.split("x"))
            x = torch.randn(rows, cols)
            seconds = timed(lambda: newton_schulz(x), 3, 1)
            print(f"newton-schulz {shape} threads={threads}: {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
