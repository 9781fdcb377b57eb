#!/usr/bin/env python3
"""The GPU-evidence report: reads the records of one benchmarks/gpu/evidence.sh run (fusedopt.jsonl
from GpuEvidence, torch.jsonl from torch_side_by_side.py, parts.tsv from the script) and writes the
markdown the README's Performance section takes: the copy bandwidth, every step beside its
same-traffic kernel and PyTorch, the tiny-tensor replay, the agreement, the targets met and missed,
and every error. Standard library only (it must run wherever the script does).

Usage: evidence_table.py DIR [OUT.md]   (the markdown goes to OUT.md, or standard output)
"""
import json
import os
import sys

SETS = ["one", "transformer"]
STORAGES = ["fp32", "bf16-master", "bf16"]


def peer_storages(storage):
    """PyTorch's rows to compare a row of ours with: fp32 with fp32; both bf16 rows with PyTorch in
    bf16 throughout ("bf16"; records before 2026-12-05 named it "bf16-master")."""
    return ["fp32"] if storage == "fp32" else ["bf16", "bf16-master"]


def read(path):
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except ValueError as e:
                        records.append(dict(kind="unreadable", error=f"{path}: {e}: {line[:200]}"))
    return records


def us(seconds):
    return "n/a" if seconds is None else f"{seconds * 1e6:,.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:,.3f} ms"


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def gbs(x):
    return f"{x:.1f}" if x >= 10 else f"{x:.3g}"


def ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def main():
    folder = sys.argv[1]
    ours = read(os.path.join(folder, "fusedopt.jsonl"))
    theirs = read(os.path.join(folder, "torch.jsonl"))
    lines = []
    say = lines.append

    meta = next((r for r in ours if r.get("kind") == "meta"), {})
    torch_meta = next((r for r in theirs if r.get("kind") == "meta"), {})
    say("# GPU evidence: fusedopt beside PyTorch\n")
    if meta.get("rehearsal") or meta.get("emulator"):
        say("**REHEARSAL** (small sizes; CUDA emulator or PyTorch on the CPU): these figures check the plumbing and "
            "mean nothing about speed.\n")
    say(f"- date: {meta.get('date', 'n/a')}")
    say(f"- device: {meta.get('device', 'n/a')}; {meta.get('probe', '')}")
    say(f"- Java: {meta.get('java', 'n/a')}")
    say(f"- PyTorch: {torch_meta.get('torch', 'not run')} on {torch_meta.get('device_name', 'n/a')}"
        f" (CUDA {torch_meta.get('cuda')}), Python {torch_meta.get('python', 'n/a')}")
    say("- command: `benchmarks/gpu/evidence.sh" + (" --rehearsal" if meta.get("rehearsal") else "") + "`")
    say("- timing: both sides median of repetitions of k steps (k: about 20 ms a repetition); fusedopt wall clock up to a "
        "synchronize, PyTorch CUDA events\n")

    def find(records, **want):
        for r in records:
            if all(r.get(k) == v for k, v in want.items()) and "error" not in r:
                return r
        return None

    copy = find(ours, kind="copy")
    copy_gbs = copy["gb_per_s"] if copy else None
    say(f"Device-to-device copy (bytes read + written): {copy_gbs:.1f} GB/s\n" if copy_gbs else "Copy: not measured\n")

    misses = []
    say("| set | storage | algorithm | fusedopt time/step | GB/s | of copy | of same-traffic | PyTorch | PyTorch time/step | speed-up |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for set_name in SETS:
        for storage in STORAGES:
            for r in [r for r in ours if r.get("kind") == "step" and r.get("set") == set_name and r.get("storage") == storage]:
                algorithm = r["algorithm"]
                if "error" in r:
                    say(f"| {set_name} | {storage} | {algorithm} | error | | | | | | |")
                    continue
                seconds = r["seconds_per_step"]
                traffic = None
                for t in ours:
                    if t.get("kind") == "same-traffic" and t.get("set") == set_name and t.get("storage") == storage \
                            and "error" not in t and t.get("bytes_per_step") == r.get("bytes_per_step"):
                        traffic = t
                of_traffic = traffic["seconds_per_step"] / seconds if traffic else None
                of_copy = r["gb_per_s"] / copy_gbs if copy_gbs else None
                peer = next((p for p in (find(theirs, kind="step", algorithm=algorithm, storage=st, set=set_name)
                                         for st in peer_storages(storage)) if p), None)
                speedup = peer["seconds_per_step"] / seconds if peer else None
                peer_label = (peer["implementation"] + (" (bf16 states, no master)" if storage == "bf16-master" else "")) if peer else "n/a"
                say(f"| {set_name} | {storage} | {algorithm} | {us(seconds)} | {gbs(r['gb_per_s'])} | {pct(of_copy)} | "
                    f"{pct(of_traffic)} | {peer_label} | {us(peer['seconds_per_step']) if peer else 'n/a'} | {ratio(speedup)} |")
                need = 1.3 if set_name == "transformer" and storage == "fp32" else 1.0
                if speedup is not None and speedup < need:
                    misses.append(f"{algorithm} {storage} {set_name}: {ratio(speedup)} PyTorch (target {need}x)")
                if algorithm == "adam" and storage == "fp32" and set_name == "one" and of_copy is not None and of_copy < 0.9:
                    misses.append(f"adam fp32 one tensor: {pct(of_copy)} of the copy bandwidth (target 90%)")
    say("")

    say("Tiny tensors (launch-bound), fp32:\n")
    say("| algorithm | fusedopt graph replay | fusedopt step() | PyTorch | PyTorch time/step | speed-up (graph) |")
    say("|---|---|---|---|---|---|")
    for r in [r for r in ours if r.get("kind") == "graph" and r.get("set") == "tiny"]:
        algorithm = r["algorithm"]
        called = find(ours, kind="step", algorithm=algorithm, set="tiny")
        peer = next((p for p in theirs if p.get("set") == "tiny" and p.get("algorithm") == algorithm and "error" not in p), None)
        graph = r.get("seconds_per_step")
        peer_label = "n/a"
        if peer:
            peer_label = peer["implementation"] + (" graph" if peer["kind"] == "graph" else " eager")
            if "graph_error" in peer:
                peer_label += " (capture failed: " + peer["graph_error"][:80] + ")"
        speedup = peer["seconds_per_step"] / graph if peer and graph else None
        say(f"| {algorithm} | {us(graph) if graph else 'error'} | {us(called['seconds_per_step']) if called else 'error'} | "
            f"{peer_label} | {us(peer['seconds_per_step']) if peer else 'n/a'} | {ratio(speedup)} |")
        if graph and graph >= 20e-6:
            misses.append(f"{algorithm} tiny tensors: {us(graph)} per replayed step (target < 20 us)")
        if speedup is not None and speedup < 1.0:
            misses.append(f"{algorithm} tiny tensors: {ratio(speedup)} PyTorch (target 1.0x)")
    say("")

    say("Agreement: 20 steps, the rate halved from step 11 (fusedopt CUDA beside its CPU reference, and beside PyTorch):\n")
    say("| algorithm | CUDA = CPU reference (bits) | PyTorch | max abs difference | max displacement | relative |")
    say("|---|---|---|---|---|---|")
    for r in [r for r in ours if r.get("kind") == "agreement"]:
        peer = find(theirs, kind="agreement", algorithm=r["algorithm"])
        same = r.get("cuda_equals_cpu_reference")
        if same is False:
            misses.append(f"{r['algorithm']}: CUDA differs from the CPU reference in "
                          f"{r.get('elements_differing_from_reference')} elements (target: bit-identical)")
        say(f"| {r['algorithm']} | {'error' if same is None else 'yes' if same else 'NO'} | "
            f"{peer['implementation'] if peer else 'n/a'} | {peer['max_abs_difference']:.3g} | "
            f"{peer['max_displacement']:.3g} | {peer['relative_difference']:.3g} |" if peer else
            f"| {r['algorithm']} | {'error' if same is None else 'yes' if same else 'NO'} | n/a | | | |")
    say("")

    say("Targets not met:\n")
    say("\n".join(f"- {m}" for m in misses) if misses else "- none")
    say("")
    errors = [r for r in ours + theirs if "error" in r]
    say(f"Errors ({len(errors)}):\n")
    for r in errors:
        say(f"- {r.get('side', '?')} {r.get('kind', '?')} {r.get('algorithm', '')} {r.get('storage', '')} {r.get('set', '')}: {r['error']}")
    parts = os.path.join(folder, "parts.tsv")
    if os.path.exists(parts):
        say("\nParts of the run (time box, exit code, seconds):\n")
        say("| part | box | exit | seconds |")
        say("|---|---|---|---|")
        with open(parts) as f:
            for line in f:
                if line.strip():
                    say("| " + " | ".join(line.rstrip("\n").split("\t")) + " |")
    text = "\n".join(lines) + "\n"
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(text)
        print(f"wrote {sys.argv[2]}: {len(misses)} targets not met, {len(errors)} errors")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
