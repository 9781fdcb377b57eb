#!/usr/bin/env bash
# The GPU-evidence run in one command: everything the GPU-evidence issue asks of a lent H100/H200,
# each part in its own time box (a part that fails or runs out of time does not stop the others),
# the whole within 560 s, everything written to $OUT as 8 files (the device tool brings back
# at most 8).
#
#   bash benchmarks/gpu/evidence.sh               on the GPU machine, from the carried working tree
#   bash benchmarks/gpu/evidence.sh --rehearsal   here: the CUDA emulator (target/cuda-emulator),
#                                                 small sizes, PyTorch's CPU build; checks the plumbing
#   ... --parts environment,checks --limit 400    a subset of the parts (names below) in a shorter limit:
#                                                 the second call of a lease, to finish what the first
#                                                 ran out of time for
#
# Needs gpu-bundle/ (benchmarks/gpu/bundle.sh). On the device tool (docs/benchmarks.md, "GPU evidence"):
#   run(command="bash benchmarks/gpu/evidence.sh", carry=["gpu-bundle"], timeout_s=600)
#
# Parts, in order: environment; the checks (the GPU tests against the driver, and compute-sanitizer
# memcheck, racecheck, synccheck and initcheck over the CUDA equivalence tests and the 16-bit
# stochastic rounding tests: five processes at once, since each is bound by the host and the GPU
# has room for all; the first real run gave the suite 100 s and each tool 35 s in turn, and none
# finished); the emulator's three open questions
# (DriverQuestions); fusedopt's benchmarks (GpuEvidence bench: copy, same-traffic kernels,
# every algorithm x storage x tensor set, tiny tensors); fusedopt's 20-step agreement run
# (GpuEvidence agree); PyTorch side by side (torch_side_by_side.py: the same cases, and the
# agreement); the report (evidence_table.py). Files in $OUT: environment.txt, tests.txt,
# questions.txt, sanitizer.txt, fusedopt.jsonl, torch.jsonl, evidence.md (the table), evidence.log.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
here=benchmarks/gpu
rehearsal=0
selected=environment,checks,questions,bench,agree,torch,report
LIMIT=560
while (( $# )); do
  case "$1" in
    --rehearsal) rehearsal=1 ;;
    --parts) selected=${2:?--parts needs a list}; shift ;;
    --limit) LIMIT=${2:?--limit needs seconds}; shift ;;
    *) echo "usage: evidence.sh [--rehearsal] [--parts environment,checks,questions,bench,agree,torch,report] [--limit SECONDS]" >&2; exit 2 ;;
  esac
  shift
done
# CUDA's tools where the image keeps them, if they are not on the PATH already.
for dir in /usr/local/cuda/bin /usr/local/nvidia/bin; do
  [[ -d $dir && ":$PATH:" != *":$dir:"* ]] && PATH="$PATH:$dir"
done
out=${OUT:-gpu-out}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
b=gpu-bundle

# The time boxes, in seconds. Each part gets its box plus at most KILL_GRACE seconds to die; the
# parts run one after the other, except the five checks, which share one box; the sum must stay
# within LIMIT (560 s: the device tool's 600 s a command, less time to unpack the runtime and bring
# the files back). The checks take what the other selected parts leave: 308 s in a whole run, where
# the GPU tests took 217 s to 238 s on an H200.
parts=(environment checks questions bench agree torch report)
declare -A box=([environment]=10 [questions]=20 [bench]=115 [agree]=20 [torch]=60 [report]=5)
KILL_GRACE=2
CHECK_GRACE=10   # a check that outlives its box first gets SIGQUIT (a JVM prints its threads), then this
declare -A chosen=()
for p in ${selected//,/ }; do
  [[ " ${parts[*]} " == *" $p "* ]] || { echo "evidence.sh: no part named $p (parts: ${parts[*]})" >&2; exit 2; }
  chosen[$p]=1
done
total=0
for p in "${parts[@]}"; do [[ -n ${chosen[$p]:-} && $p != checks ]] && total=$((total + box[$p] + KILL_GRACE)); done
box[checks]=$((LIMIT - total - CHECK_GRACE))
if [[ -n ${chosen[checks]:-} ]]; then
  total=$((total + box[checks] + CHECK_GRACE))
  if (( box[checks] < 30 )); then
    echo "evidence.sh: the other parts leave the checks ${box[checks]} s of $LIMIT s; give a larger --limit" >&2
    exit 2
  fi
fi
if (( total > LIMIT )); then
  echo "evidence.sh: the time boxes add up to $total s, more than $LIMIT s" >&2
  exit 2
fi

log() { echo "$*" | tee -a "$out/evidence.log"; }
: > "$out/evidence.log"
log "evidence.sh$([[ $rehearsal == 1 ]] && echo ' --rehearsal'): $(date -u +%Y-%m-%dT%H:%M:%SZ); time boxes add up to $total s of $LIMIT s"

# Runs one part in its time box: part NAME FILE COMMAND..., output appended to FILE. The checks
# (BOX=checks) are stopped with SIGQUIT first, so that a JVM stuck in a test prints its threads.
part() {
  local name=$1 file=$2 start=$SECONDS rc seconds=${box[${BOX:-$1}]}
  shift 2
  [[ -n ${chosen[${BOX:-$name}]:-} ]] || return 0
  log "== $name (time box $seconds s)"
  echo "== $name" >> "$file"
  if [[ ${BOX:-} == checks ]]; then
    timeout --signal=QUIT --kill-after="$CHECK_GRACE" "$seconds" "$@" >> "$file" 2>&1
  else
    timeout --kill-after="$KILL_GRACE" "$seconds" "$@" >> "$file" 2>&1
  fi
  rc=$?
  if [[ $rc == 124 || $rc == 137 || $rc == 131 ]]; then echo "$name: stopped by its time box of $seconds s" >> "$file"; fi
  printf '%s\t%s s\t%s\t%s\n' "$name" "$seconds" "$rc" "$((SECONDS - start))" >> "$work/parts.tsv"
  log "   $name: exit $rc after $((SECONDS - start)) s"
}

# ---- the runtime, the class path, and where CUDA comes from ----
if [[ ! -d $b/classes ]]; then
  log "evidence.sh: $b/ is missing: run benchmarks/gpu/bundle.sh first (and carry gpu-bundle)"
  exit 1
fi
[[ -x $b/jre/bin/java ]] || tar xzf "$b/jre.tgz" -C "$b"
java=("$b/jre/bin/java" --add-modules jdk.incubator.vector)
cp="$b/classes:$b/test-classes:$(ls "$b"/lib/*.jar | tr '\n' ':')"
bench_args=()
python=python3
torch_args=(--device cuda)
if [[ $rehearsal == 1 ]]; then
  emulator=target/cuda-emulator
  if [[ "$(head -n 1 "$emulator/status" 2>/dev/null)" != ready ]]; then
    log "evidence.sh --rehearsal: the CUDA emulator is not built ($emulator/status); run mvn test-compile first"
    exit 1
  fi
  export LD_LIBRARY_PATH="$PWD/$emulator${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  java+=("-Dfusedopt.test.cudaEmulator=$PWD/$emulator")
  # Two GPU test classes, not all of them: the suite's emulator execution runs every one already.
  tests=(--select-class io.fusedopt.cuda.DeviceSameTrafficTest --select-class io.fusedopt.CudaConversionTest)
  bench_args=(--rehearsal)
  torch_args=(--device cpu --rep-seconds 0.001 --repetitions 3)
  # Debian's python3-torch (1.13, CPU) when the default python3 has no torch.
  $python -c 'import torch' 2>/dev/null || python=/usr/bin/python3
else
  tests=(--scan-class-path "$b/test-classes")
fi
junit=("${java[@]}" -jar "$(ls "$b"/junit-platform-console-standalone-*.jar)" execute --class-path "$cp"
  --disable-banner --disable-ansi-colors --details=testfeed --include-tag gpu)

# ---- 1. environment ----
environment() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mode: $([[ $rehearsal == 1 ]] && echo 'rehearsal on the CUDA emulator' || echo 'real GPU')"
  echo "commit: $(cat "$b/commit.txt" 2>/dev/null || echo unknown)"
  echo "host: $(uname -srm), $(nproc) cores"
  echo "--- nvidia-smi"; nvidia-smi 2>&1 || echo "nvidia-smi: not found"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
  echo "--- nvcc"; nvcc --version 2>&1 | tail -n 2 || echo "nvcc: not found"
  echo "--- compute-sanitizer"
  if command -v compute-sanitizer >/dev/null 2>&1; then compute-sanitizer --version 2>&1 | head -n 3; else echo "compute-sanitizer: not found"; fi
  echo "--- python and PyTorch"; command -v "$python"
  "$python" -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1
  echo "--- java"; "$java_bin" -version 2>&1
  echo "--- bundle"; du -sh "$b" 2>&1
}
# timeout runs programs, not shell functions: the part runs in a child bash that inherits these.
java_bin=${java[0]}
export rehearsal b python java_bin
export -f environment
part environment "$out/environment.txt" bash -c environment

# ---- 2. the checks, at once: the GPU tests against the driver, and compute-sanitizer ----
# A test that hangs on the real driver fails after 120 s (its thread is left behind, still holding
# what it held: on the first H200 run a 60 s limit stopped a slow test, whose thread then kept the
# primary context retained and failed a later test) instead of taking the rest of the box; the
# report lists each test as it ends (testfeed), so that a box that runs out shows how far it got.
test_timeout=(--config=junit.jupiter.execution.timeout.default=120s
  --config=junit.jupiter.execution.timeout.thread.mode.default=SEPARATE_THREAD)
BOX=checks part tests "$out/tests.txt" "${junit[@]}" "${test_timeout[@]}" "${tests[@]}" &
# What the sanitizer tools run: every algorithm's kernels (the equivalence tests), and the entry point
# for 16-bit operands only (_narrow) with stochastic rounding, at an aligned and at an odd vector phase.
sanitized=(--select-class io.fusedopt.CudaEquivalenceTest
  --select-method io.fusedopt.StochasticRoundingTest#cudaDrawsTheReferencesBits
  --select-method io.fusedopt.CudaBackendTest#stochasticRoundingAtAnOddVectorPhaseDrawsTheReferencesBits)
for tool in memcheck racecheck synccheck initcheck; do
  if [[ $rehearsal == 1 ]]; then
    BOX=checks part "$tool" "$work/sanitizer.$tool" echo "$tool: skipped in a rehearsal (compute-sanitizer needs the real driver)" &
  elif ! command -v compute-sanitizer >/dev/null 2>&1; then
    BOX=checks part "$tool" "$work/sanitizer.$tool" echo "$tool: compute-sanitizer is not on the PATH of this machine" &
  else
    # Each tool with a temporary folder of its own, started 2 s after the one before: on the first
    # H200 run, of four started in the same second, synccheck's JVM died of SIGBUS in the dynamic
    # loader before its first CUDA call (a file mapped by one and rewritten by another is the
    # likely cause; the other three ran clean).
    mkdir -p "$work/tmp.$tool"
    BOX=checks part "$tool" "$work/sanitizer.$tool" env TMPDIR="$work/tmp.$tool" compute-sanitizer --tool "$tool" \
      --error-exitcode 99 --print-limit 50 "${junit[@]}" "${sanitized[@]}" &
    sleep 2
  fi
done
wait
if [[ -n ${chosen[checks]:-} ]]; then
  cat "$work"/sanitizer.{memcheck,racecheck,synccheck,initcheck} > "$out/sanitizer.txt" 2>/dev/null
fi

# ---- 3. the emulator's three open questions ----
part questions "$out/questions.txt" "${java[@]}" -cp "$cp" io.fusedopt.cuda.DriverQuestions

# ---- 4. fusedopt's benchmarks and agreement run, then PyTorch's side ----
part bench "$out/evidence.log" "${java[@]}" -cp "$cp" io.fusedopt.bench.GpuEvidence bench --out "$work" \
  --deadline-seconds $((box[bench] - 20)) "${bench_args[@]}"
part agree "$out/evidence.log" "${java[@]}" -cp "$cp" io.fusedopt.bench.GpuEvidence agree --out "$work" \
  --deadline-seconds $((box[agree] - 10)) "${bench_args[@]}"
part torch "$out/evidence.log" env PYTHONUNBUFFERED=1 "$python" "$here/torch_side_by_side.py" --work "$work" \
  --out "$work/torch.jsonl" --deadline-seconds $((box[torch] - 15)) "${torch_args[@]}"

# ---- 5. the report ----
if [[ -n ${chosen[report]:-} ]]; then
  cp "$work/fusedopt.jsonl" "$out/fusedopt.jsonl" 2>/dev/null || : > "$out/fusedopt.jsonl"
  cp "$work/torch.jsonl" "$out/torch.jsonl" 2>/dev/null || : > "$out/torch.jsonl"
  part report "$work/report.log" "$python" "$here/evidence_table.py" "$work" "$out/evidence.md"
  cat "$work/report.log" >> "$out/evidence.log"
fi
log "evidence.sh: done in $SECONDS s; files in $out: $(cd "$out" && ls | tr '\n' ' ')"
