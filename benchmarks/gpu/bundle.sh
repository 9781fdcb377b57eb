#!/usr/bin/env bash
# Builds gpu-bundle/ (git-ignored): what a GPU machine without a JDK or Maven needs to run the
# GPU tests and the JMH benchmarks: a jlinked Java runtime, the compiled classes, every
# test-scope jar, and JUnit's console launcher. Carry it with the device tool's carry option and
# run benchmarks/gpu/run-on-device.sh there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=gpu-bundle
rm -rf "$out" && mkdir -p "$out/lib"
mvn -B -q test-compile dependency:copy-dependencies -DincludeScope=test -DoutputDirectory="$out/lib"
mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4 -DoutputDirectory="$out"
cp -r target/classes "$out/classes"
cp -r target/test-classes "$out/test-classes"
# JCublas and the unused JCuda natives (NVRTC, PTX compiler, runtime) are large and not needed here.
find "$out/lib" -name 'jcuda-natives-*' -exec sh -c 'cd "$(dirname "$1")" && mkdir x && cd x && unzip -q ../"$(basename "$1")" \
  && rm -f lib/libJNvPTXCompiler* lib/libJNvrtc* lib/libJCudaRuntime* && zip -qr ../"$(basename "$1")" . && cd .. && rm -rf x' _ {} \;
# The fast CPU backend's Vector API, and java.desktop for the demo's charts (CommandLineTest).
mods=jdk.incubator.vector,java.desktop
bash ../shared/gpu/make-jre.sh "$out" "$mods" >/dev/null 2>&1 || bash "$(git rev-parse --show-toplevel)/../shared/gpu/make-jre.sh" "$out" "$mods"
du -sh "$out"
