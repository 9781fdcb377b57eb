#!/usr/bin/env bash
# The CPU comparison (copy roofline, CPU reference, CPU_FAST, ND4J updaters) in one JMH run; writes
# benchmarks/results/DATE-cpu.{json,md}. ND4J is a benchmark-only dependency: the nd4j profile adds it.
# Usage: benchmarks/cpu-report.sh [--quick] [--out DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mvn -B -q -Pnd4j test-compile dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/jmh-classpath.txt
exec java --add-modules jdk.incubator.vector -cp "target/classes:target/test-classes:$(cat target/jmh-classpath.txt)" \
    io.fusedopt.bench.CpuReport "$@"
