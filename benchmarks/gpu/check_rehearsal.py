#!/usr/bin/env python3
"""Proves that a rehearsal of benchmarks/gpu/evidence.sh (on the CUDA emulator, PyTorch on the CPU)
went end to end, so that the GPU-evidence run cannot rot between lent GPUs. Called by .ci/run.

Checks, in the folder the run wrote ($OUT):
- the 8 files, no more (the device tool brings back at most 8);
- every part exited 0 within its time box, and the boxes add up to at most 560 s;
- the GPU tests ran and passed, and the three questions were answered;
- fusedopt's records: a copy row, a same-traffic row per distinct traffic and set (fp32 states),
  a step row for every algorithm x storage (fp32, bf16-master, bf16) x set, graph and step rows
  for the tiny set, an agreement row per algorithm with CUDA bit-identical to the CPU reference;
  no errors;
- PyTorch's records: a row for every case fusedopt wrote, an agreement per algorithm within 1e-4 of
  the displacement; no errors;
- evidence.md has its tables and marks itself a rehearsal.

Usage: check_rehearsal.py OUT_DIR; exit 0 when all hold, else 1 with every failure listed.
"""
import json
import os
import re
import sys

EXPECTED_FILES = {"environment.txt", "tests.txt", "questions.txt", "sanitizer.txt", "fusedopt.jsonl", "torch.jsonl",
                  "evidence.md", "evidence.log"}
ALGORITHMS = ["adam", "adamw", "amsgrad", "rmsprop", "rmsprop-centered-momentum", "momentum", "heavy-ball", "sgd",
              "adagrad"]
STORAGES = ["fp32", "bf16-master", "bf16"]
TRAFFIC_STORAGES = ["fp32", "bf16-master"]  # the same-traffic kernel has fp32 states only


def main():
    folder = sys.argv[1]
    failures = []

    def expect(condition, message):
        if not condition:
            failures.append(message)

    def text(name):
        path = os.path.join(folder, name)
        return open(path).read() if os.path.exists(path) else ""

    def records(name):
        return [json.loads(line) for line in text(name).splitlines() if line.strip()]

    files = set(os.listdir(folder))
    expect(files == EXPECTED_FILES, f"files: expected {sorted(EXPECTED_FILES)}, found {sorted(files)}")

    log = text("evidence.log")
    boxes = re.search(r"time boxes add up to (\d+) s of (\d+) s", log)
    expect(boxes and int(boxes.group(1)) <= 560, "the time boxes do not add up to at most 560 s")
    exits = re.findall(r"^\s+(\S+): exit (\d+) after", log, re.MULTILINE)
    parts = [name for name, _ in exits]
    # The five checks run at once and end in any order; the other parts one after the other.
    checks = {"tests", "memcheck", "racecheck", "synccheck", "initcheck"}
    expect(parts[:1] == ["environment"] and set(parts[1:6]) == checks
           and parts[6:] == ["questions", "bench", "agree", "torch", "report"], f"parts run: {parts}")
    for name, code in exits:
        expect(code == "0", f"part {name} exited {code}")

    tests = text("tests.txt")
    found = re.search(r"(\d+) tests successful", tests)
    expect(found and int(found.group(1)) > 0 and re.search(r"\b0 tests failed", tests), "GPU tests did not all pass")
    questions = text("questions.txt")
    for q in ("1 reset:", "2 capture:", "3 nan:"):
        expect(q in questions, f"question '{q}' has no answer")

    ours = records("fusedopt.jsonl")
    for r in ours:
        expect("error" not in r, f"fusedopt record with an error: {r}")
    meta = [r for r in ours if r.get("kind") == "meta"]
    expect(len(meta) == 2 and all(m.get("rehearsal") for m in meta), "fusedopt: two meta records (bench, agree) of a rehearsal")
    expect(any(r.get("kind") == "copy" and r.get("seconds_per_step", 0) > 0 for r in ours), "fusedopt: no copy row")
    for set_name in ("one", "transformer"):
        traffic = [r for r in ours if r.get("kind") == "same-traffic" and r.get("set") == set_name]
        expect(len(traffic) == 8, f"fusedopt: {len(traffic)} same-traffic rows for {set_name}, expected 8 (0-3 states x 2)")
        for algorithm in ALGORITHMS:
            for storage in STORAGES:
                step = [r for r in ours if r.get("kind") == "step" and r.get("set") == set_name
                        and r.get("algorithm") == algorithm and r.get("storage") == storage]
                expect(len(step) == 1 and step[0].get("seconds_per_step", 0) > 0,
                       f"fusedopt: no step row for {algorithm} {storage} {set_name}")
                expect(storage not in TRAFFIC_STORAGES
                       or step and any(t.get("bytes_per_step") == step[0].get("bytes_per_step") for t in traffic),
                       f"fusedopt: no same-traffic row with the bytes of {algorithm} {storage} {set_name}")
    for algorithm in ALGORITHMS:
        for kind in ("graph", "step"):
            expect(any(r.get("kind") == kind and r.get("set") == "tiny" and r.get("algorithm") == algorithm for r in ours),
                   f"fusedopt: no tiny {kind} row for {algorithm}")
        agreement = [r for r in ours if r.get("kind") == "agreement" and r.get("algorithm") == algorithm]
        expect(len(agreement) == 1 and agreement[0].get("cuda_equals_cpu_reference") is True,
               f"fusedopt: {algorithm}: CUDA is not bit-identical to the CPU reference: {agreement}")

    theirs = records("torch.jsonl")
    for r in theirs:
        expect("error" not in r, f"PyTorch record with an error: {r}")
    expect(any(r.get("kind") == "meta" for r in theirs), "PyTorch: no meta record")
    cases = [r for r in ours if r.get("kind") in ("step", "graph") and r.get("set") in ("one", "transformer")]
    for r in cases:
        # PyTorch in bf16 throughout is the peer of both bf16 rows of ours.
        peer = "fp32" if r["storage"] == "fp32" else "bf16"
        expect(any(t.get("set") == r["set"] and t.get("storage") == peer and t.get("algorithm") == r["algorithm"]
                   and t.get("seconds_per_step", 0) > 0 for t in theirs),
               f"PyTorch: no row for {r['algorithm']} {r['storage']} {r['set']}")
    for algorithm in ALGORITHMS:
        expect(any(t.get("set") == "tiny" and t.get("algorithm") == algorithm for t in theirs),
               f"PyTorch: no tiny row for {algorithm}")
        agreement = [t for t in theirs if t.get("kind") == "agreement" and t.get("algorithm") == algorithm]
        expect(len(agreement) == 1 and agreement[0].get("relative_difference") is not None
               and agreement[0]["relative_difference"] < 1e-4,
               f"PyTorch: {algorithm}: agreement missing or off by more than 1e-4 of the displacement: {agreement}")

    report = text("evidence.md")
    for heading in ("**REHEARSAL**", "| set | storage | algorithm |", "Tiny tensors", "Agreement:", "Targets not met:",
                    "Errors (0):"):
        expect(heading in report, f"evidence.md lacks '{heading}'")

    if failures:
        print(f"check_rehearsal: {len(failures)} failures in {folder}:")
        for f in failures:
            print("  - " + f)
        sys.exit(1)
    print(f"check_rehearsal: the GPU-evidence rehearsal in {folder} ran end to end "
          f"({len(ours)} fusedopt records, {len(theirs)} PyTorch records, 8 files)")


if __name__ == "__main__":
    main()
