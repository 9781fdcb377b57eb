#!/usr/bin/env python3
"""PyTorch's side of benchmarks/gpu/evidence.sh: the same cases as fusedopt's (GpuEvidence), timed
the same way, and the 20-step agreement with fusedopt's final params.

Input (written by io.fusedopt.bench.GpuEvidence into --work):
  cases.tsv      algorithm, storage (fp32 | bf16), set (one | transformer | tiny), lengths
  agreement.tsv  algorithm, fusedopt's final params (little-endian float32), lengths, steps, the step
                 from which the rate is halved
  torch-optimizers.json  each algorithm's torch.optim class and keyword arguments, from the registration
                 (io.fusedopt.bench.TorchOptimizers: Algorithm.torchEquivalent of StepBenchmark.config)
Output (--out, one JSON object a line): a "meta" record, then one record per case.

Which PyTorch implementation: fused=True where the class has it (Adam, AdamW, SGD, Adagrad on CUDA),
RMSprop with foreach=True (no fused RMSprop exists), each falling back to foreach, then to the
default, when the installed PyTorch refuses it (on the CPU rehearsal, PyTorch 1.13 has no fused CPU
kernels); the record names the one used. bf16 rows: params, grads and states in bf16 (PyTorch's
optimizers keep no master weights), the peer of fusedopt's "bf16" rows (the same traffic) and of
its "bf16-master" rows (fp32 master weights and states: more bytes). The tiny-tensor set
runs replayed from a CUDA graph (captured with capturable=True where the optimizer takes that
argument, as it is where it does not) where that works, else eagerly.

Timing: warm-up steps, then repetitions of k steps (k chosen so that one lasts about --rep-seconds),
each the mean time per step between two CUDA events (wall clock with a synchronize on the CPU);
the figure is the median over repetitions, as fusedopt's side does.
The hyper-parameters are torch-optimizers.json's (the same as StepBenchmark.config), read by
benchmarks/torch_optim.py's load_optimizers.
"""
import argparse
import inspect
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_optim import load_optimizers  # noqa: E402

OPTIMIZERS = {}  # algorithm -> (torch.optim class name, keyword arguments); main() loads it from --work

import numpy as np  # noqa: E402
import torch  # noqa: E402


class Timer:
    def __init__(self, device, rep_seconds, repetitions):
        self.cuda = device.type == "cuda"
        self.rep_seconds = rep_seconds
        self.repetitions = repetitions

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, step):
        """Sorted mean seconds per step of each repetition."""
        for _ in range(3):
            step()
        self.sync()
        start = time.perf_counter()
        step()
        self.sync()
        once = max(1e-9, time.perf_counter() - start)
        k = int(max(1, min(10_000, math.ceil(self.rep_seconds / once))))
        results = []
        for _ in range(self.repetitions):
            if self.cuda:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                for _ in range(k):
                    step()
                end.record()
                end.synchronize()
                results.append(begin.elapsed_time(end) / 1000.0 / k)
            else:
                start = time.perf_counter()
                for _ in range(k):
                    step()
                results.append((time.perf_counter() - start) / k)
        return sorted(results)


def implementations(algorithm, capturable):
    """The keyword sets to try, best first: fused (not for RMSprop), foreach, the default."""
    name, _ = OPTIMIZERS[algorithm]
    accepted = inspect.signature(getattr(torch.optim, name).__init__).parameters
    tries = []
    if name != "RMSprop" and "fused" in accepted:
        tries.append(("fused", dict(fused=True)))
    if "foreach" in accepted:
        tries.append(("foreach", dict(foreach=True)))
    tries.append(("default", {}))
    # An optimizer without the argument (SGD, Adagrad in PyTorch 2.11) is captured as it is: SGD
    # keeps nothing on the host per step, and where another does, the capture fails and says why.
    # (The first H200 run returned no implementation here, and timed those rows eagerly.)
    if capturable and "capturable" in accepted:
        tries = [(label + "+capturable", dict(extra, capturable=True)) for label, extra in tries]
    return tries


def build(algorithm, params, capturable=False):
    """The optimizer of the first implementation that constructs and takes a step on a scratch copy."""
    name, kwargs = OPTIMIZERS[algorithm]
    errors = []
    for label, extra in implementations(algorithm, capturable):
        try:
            scratch = [p.detach().clone()[:4].requires_grad_() for p in params[:1]]
            for p in scratch:
                p.grad = torch.zeros_like(p)
            getattr(torch.optim, name)(scratch, **kwargs, **extra).step()
            return getattr(torch.optim, name)(params, **kwargs, **extra), label
        except (RuntimeError, ValueError, TypeError) as e:
            errors.append(f"{label}: {e}".splitlines()[0])
    raise RuntimeError("no implementation works here: " + "; ".join(errors))


def tensors(lengths, storage, device, seed=1):
    generator = torch.Generator(device=device).manual_seed(seed)
    dtype = torch.float32 if storage == "fp32" else torch.bfloat16
    params = []
    for n in lengths:
        p = torch.randn(n, generator=generator, device=device).to(dtype=dtype).requires_grad_()
        p.grad = (torch.randn(n, generator=generator, device=device) * 1e-2).to(dtype=dtype)
        params.append(p)
    return params


def graph_step(optimizer):
    """A CUDA graph of one step, warmed on a side stream as torch.cuda.graphs asks."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        optimizer.step()
    return graph.replay


def bench_case(algorithm, storage, set_name, lengths, device, timer):
    record = dict(side="pytorch", kind="step", algorithm=algorithm, storage=storage, set=set_name,
                  tensors=len(lengths), elements=sum(lengths))
    params = tensors(lengths, storage, device)
    try:
        with torch.no_grad():
            if set_name == "tiny" and device.type == "cuda":
                record["kind"] = "graph"
                try:
                    optimizer, label = build(algorithm, params, capturable=True)
                    step = graph_step(optimizer)
                except Exception as e:  # capture is best effort: time it eagerly and say why
                    record["graph_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
                    record["kind"] = "step"
                    optimizer, label = build(algorithm, params)
                    step = optimizer.step
            else:
                optimizer, label = build(algorithm, params)
                step = optimizer.step
            record["implementation"] = label
            seconds = timer.time(step)
        record["seconds_per_step"] = seconds[len(seconds) // 2]
        record["repetitions"] = seconds
    finally:
        del params
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return record


def formula_inputs(total, steps):
    """GpuEvidence.initialParam and .gradient: integer arithmetic, one double division, one rounding."""
    i = np.arange(total, dtype=np.int64)
    p0 = (((i * 7919) % 2001 - 1000) / 1000.0).astype(np.float32)
    grads = [((((i * 104729 + step * 7919) % 2001) - 1000) / 1000.0 * 0.01).astype(np.float32)
             for step in range(1, steps + 1)]
    return p0, grads


def agreement_case(algorithm, ours_file, lengths, steps, change_step, device):
    total = sum(lengths)
    p0, grads = formula_inputs(total, steps)
    flat = torch.from_numpy(p0.copy())
    params = [t.clone().to(device).requires_grad_() for t in torch.split(flat, lengths)]
    record = dict(side="pytorch", kind="agreement", algorithm=algorithm, storage="fp32", set="agreement",
                  elements=total, steps=steps, rate_change_step=change_step)
    with torch.no_grad():
        optimizer, label = build(algorithm, params)
        rate = optimizer.param_groups[0]["lr"]
        for step in range(1, steps + 1):
            if step == change_step:
                for group in optimizer.param_groups:
                    group["lr"] = rate * 0.5
            for p, g in zip(params, torch.split(torch.from_numpy(grads[step - 1]), lengths)):
                p.grad = g.clone().to(device)
            optimizer.step()
    theirs = torch.cat([p.detach().cpu() for p in params]).numpy().astype(np.float64)
    ours = np.fromfile(ours_file, dtype="<f4").astype(np.float64)
    if ours.shape != theirs.shape:
        raise RuntimeError(f"{ours_file} holds {ours.size} values, expected {theirs.size}")
    difference = float(np.max(np.abs(ours - theirs)))
    displacement = float(np.max(np.abs(theirs - p0.astype(np.float64))))
    record.update(implementation=label, max_abs_difference=difference, max_displacement=displacement,
                  relative_difference=difference / displacement if displacement > 0 else None,
                  bit_identical=bool(np.array_equal(ours.astype(np.float32).view(np.uint32),
                                                    theirs.astype(np.float32).view(np.uint32))))
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder with cases.tsv and agreement.tsv from GpuEvidence")
    parser.add_argument("--out", required=True, help="JSON lines file to append to")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--rep-seconds", type=float, default=0.02)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--deadline-seconds", type=float, default=float("inf"),
                        help="start no case after this many seconds")
    args = parser.parse_args()
    OPTIMIZERS.update(load_optimizers(os.path.join(args.work, "torch-optimizers.json")))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_side_by_side: --device cuda, but this PyTorch sees no GPU")
    timer = Timer(device, args.rep_seconds, args.repetitions)
    started = time.monotonic()

    def emit(out, record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    with open(args.out, "a") as out:
        emit(out, dict(side="pytorch", kind="meta", torch=torch.__version__, device=str(device),
                       device_name=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                       cuda=torch.version.cuda, python=sys.version.split()[0]))
        jobs = []
        with open(os.path.join(args.work, "agreement.tsv")) as f:
            for line in f:
                if line.strip():
                    algorithm, file, lengths, steps, change = line.rstrip("\n").split("\t")
                    jobs.append(("agreement", algorithm, lambda a=algorithm, fi=file, le=lengths, s=steps, c=change:
                                 agreement_case(a, os.path.join(args.work, fi), [int(n) for n in le.split(",")],
                                                int(s), int(c), device)))
        with open(os.path.join(args.work, "cases.tsv")) as f:
            for line in f:
                if line.strip():
                    algorithm, storage, set_name, lengths = line.rstrip("\n").split("\t")
                    jobs.append(("case", algorithm, lambda a=algorithm, st=storage, se=set_name, le=lengths:
                                 bench_case(a, st, se, [int(n) for n in le.split(",")], device, timer)))
        for kind, algorithm, job in jobs:
            if time.monotonic() - started > args.deadline_seconds:
                emit(out, dict(side="pytorch", kind=kind, algorithm=algorithm, error="not run: the time box ended first"))
                continue
            begin = time.monotonic()
            try:
                record = job()
            except Exception as e:  # one failing case must not stop the others
                record = dict(side="pytorch", kind=kind, algorithm=algorithm,
                              error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            emit(out, record)
            print(f"{record.get('kind', kind):10} {algorithm:26} {record.get('storage', ''):11} {record.get('set', ''):11} "
                  f"{time.monotonic() - begin:.1f} s{'  ERROR ' + record['error'] if 'error' in record else ''}", flush=True)


if __name__ == "__main__":
    main()
