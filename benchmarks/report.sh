#!/usr/bin/env bash
# Runs the step and copy benchmarks for one backend and writes benchmarks/results/DATE-BACKEND.{json,md}.
# Usage: benchmarks/report.sh CPU|CUDA [--quick] [--out DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mvn -B -q test-compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/jmh-classpath.txt
exec java -cp "target/classes:target/test-classes:$(cat target/jmh-classpath.txt)" io.fusedopt.bench.BenchmarkReport "$@"
