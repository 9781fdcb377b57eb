#!/usr/bin/env bash
# Runs the JMH benchmarks in a plain JVM (JMH forks need a real classpath, which exec:java lacks).
# Usage: benchmarks/run-jmh.sh [JMH arguments...], for example
#   benchmarks/run-jmh.sh StepBenchmark -p backend=CPU -p size=1048576
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mvn -B -q test-compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/jmh-classpath.txt
exec java -cp "target/classes:target/test-classes:$(cat target/jmh-classpath.txt)" org.openjdk.jmh.Main "$@"
