#!/usr/bin/env python3
"""torch.optim's side of benchmarks/cpu-report.sh: times one optimizer step per case, the way JMH
times ours (warm-up iterations, then measured iterations of a fixed duration, each reporting its
mean time per step), so CpuReport can take the median of both sides the same way.

Input (--cases FILE): one case a line, tab-separated: algorithm, tensor-set label, the tensor
lengths comma-separated (CpuReport writes it from TensorSets, so both sides step the same tensors).
Input (--optimizers FILE): the torch.optim class and keyword arguments of each algorithm, which
CpuReport writes from the registration (io.fusedopt.bench.TorchOptimizers).
Output (stdout): a "META" line (torch version, threads), then one line per measured iteration:
RESULT <tab> algorithm <tab> set label <tab> foreach (true|false) <tab> seconds per step.
The hyper-parameters are the ones StepBenchmark.config gives fusedopt (the same work per step).
"""
import argparse
import json
import sys
import time

import torch


def load_optimizers(path):
    """algorithm -> (torch.optim class name, keyword arguments), from the file io.fusedopt.bench.TorchOptimizers
    writes: every algorithm's own torch equivalent (Algorithm.torchEquivalent), the settings StepBenchmark.config
    gives fusedopt."""
    with open(path) as f:
        table = json.load(f)
    return {name: (entry["class"], {key: tuple(value) if isinstance(value, list) else value
                                    for key, value in entry["arguments"].items()})
            for name, entry in table.items()}


def timed_iteration(step, seconds):
    """Mean seconds per step over at least `seconds` (and at least one step)."""
    steps = 0
    start = time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / steps


def run_case(optimizers, algorithm, label, lengths, foreach, args):
    name, kwargs = optimizers[algorithm]
    generator = torch.Generator().manual_seed(1)
    params = []
    for n in lengths:
        p = torch.randn(n, generator=generator, dtype=torch.float32)
        p.grad = torch.randn(n, generator=generator, dtype=torch.float32).mul_(1e-2)
        params.append(p)
    optimizer = getattr(torch.optim, name)(params, foreach=foreach, **kwargs)
    with torch.no_grad():
        for _ in range(args.warmup):
            timed_iteration(optimizer.step, args.warmup_time)
        for _ in range(args.iterations):
            seconds = timed_iteration(optimizer.step, args.time)
            print(f"RESULT\t{algorithm}\t{label}\t{str(foreach).lower()}\t{seconds:.9e}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, help="file of cases: algorithm, set label, lengths")
    parser.add_argument("--optimizers", required=True, help="JSON file: algorithm -> torch.optim class and arguments")
    parser.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up iterations per case")
    parser.add_argument("--warmup-time", type=float, default=0.5, help="seconds per warm-up iteration")
    parser.add_argument("--iterations", type=int, default=2, help="measured iterations per case")
    parser.add_argument("--time", type=float, default=0.5, help="seconds per measured iteration")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    print(f"META\t{torch.__version__}\t{torch.get_num_threads()}", flush=True)
    optimizers = load_optimizers(args.optimizers)
    with open(args.cases) as f:
        cases = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for fields in cases:
        if len(fields) != 3 or fields[0] not in optimizers:
            sys.exit(f"bad case line {fields!r}: expected algorithm (one of {sorted(optimizers)}), "
                     "set label and comma-separated lengths, tab-separated")
        algorithm, label, lengths = fields[0], fields[1], [int(n) for n in fields[2].split(",")]
        for foreach in (True, False):
            run_case(optimizers, algorithm, label, lengths, foreach, args)


if __name__ == "__main__":
    main()
