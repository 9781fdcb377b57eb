#!/usr/bin/env bash
# On the GPU machine: runs every test (GPU ones included), the CLI's selftest and bench, and optionally the JMH step benchmark,
# from gpu-bundle/, writing the record to ${OUT:-gpu-out}. Usage: run-on-device.sh [jmh]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-gpu-out}; mkdir -p "$out"
b=gpu-bundle
[[ -x $b/jre/bin/java ]] || (cd $b && tar xzf jre.tgz)
java="$b/jre/bin/java --add-modules jdk.incubator.vector"
cp="$b/classes:$b/test-classes:$(ls $b/lib/*.jar | tr '\n' ':')"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "command: benchmarks/gpu/run-on-device.sh $*"
} > "$out/environment.txt" 2>&1
# Tests run from kernels/ sources too (KernelContractTest), so run from the repository root.
$java -jar $b/junit-platform-console-standalone-*.jar execute --class-path "$cp" --scan-class-path "$b/test-classes" \
  --details=tree --disable-banner > "$out/tests.txt" 2>&1
echo "tests exit code: $?" >> "$out/tests.txt"
tail -20 "$out/tests.txt"
# The command line's selftest (CPU reference vs CPU_FAST vs CUDA, every variant) and a bench table.
$java -cp "$cp" io.fusedopt.cli.FusedOptCli selftest > "$out/selftest.txt" 2>&1
echo "selftest exit code: $?" >> "$out/selftest.txt"
$java -cp "$cp" io.fusedopt.cli.FusedOptCli bench --backend CUDA --sizes 2^20,2^24,2^28 --no-progress \
  --csv "$out/bench.csv" --json "$out/bench.json" > "$out/bench.txt" 2>&1
tail -12 "$out/selftest.txt" "$out/bench.txt"
if [[ ${1:-} == jmh ]]; then
  $java -cp "$cp" io.fusedopt.bench.BenchmarkReport CUDA --out "$out" > "$out/report.txt" 2>&1
  tail -30 "$out/report.txt"
fi
