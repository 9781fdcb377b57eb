#!/usr/bin/env bash
# Builds gpu-bundle/ (git-ignored): what a GPU machine without a JDK or Maven needs to run
# benchmarks/gpu/evidence.sh: a jlinked Java 17 runtime, the compiled classes (with the kernel
# binaries), the test classes, every test-scope jar the GPU tests use, and JUnit's console launcher.
# Carry it with the device tool's carry option (with the working tree it must stay within the
# tool's 64 MiB; this script prints both sizes and fails above that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=gpu-bundle
limit=$((64 * 1024 * 1024))
rm -rf "$out" && mkdir -p "$out/lib"
# One Maven run (each costs tens of seconds of start-up on a 2-core machine): the jars, then JUnit's
# console launcher, which the run starts with -jar and so must not be on the class path too.
mvn -B -q test-compile dependency:copy-dependencies dependency:copy -DincludeScope=test -DoutputDirectory="$out/lib" \
  -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4
mv "$out"/lib/junit-platform-console-standalone-*.jar "$out/"
cp -r target/classes "$out/classes"
cp -r target/test-classes "$out/test-classes"
# Not needed on the GPU machine: the fuzzing engine (11 MB; CheckpointFuzzTest is not a GPU test,
# and its annotations stay resolvable through jazzer-api and jazzer-junit), and the JCuda natives
# fusedopt never loads (NVRTC, the PTX compiler, the runtime API: 25 MB unpacked).
rm -f "$out"/lib/jazzer-[0-9]*.jar
# Nor XChart's vector-format exporters (PDF, SVG, EPS: 4 MB): the demo and its tests write PNGs only.
rm -f "$out"/lib/pdfbox-*.jar "$out"/lib/fontbox-*.jar "$out"/lib/graphics2d-*.jar "$out"/lib/VectorGraphics2D-*.jar \
  "$out"/lib/commons-logging-*.jar
# Nor DJL's PyTorch engine with its libtorch (115 MB): the DJL adapter's tests are not GPU tests
# (the run selects the tag "gpu"); DJL's API stays, for the classes that compile against it.
rm -f "$out"/lib/pytorch-native-cpu-*.jar "$out"/lib/pytorch-jni-*.jar "$out"/lib/pytorch-engine-*.jar
for jar in "$out"/lib/jcuda-natives-*.jar; do
  zip -qd "$jar" 'lib/libJNvPTXCompiler*' 'lib/libJNvrtc*' 'lib/libJCudaRuntime*'
done
# A Java 17 runtime of the modules the run needs (the GPU machine has no JDK): the base set, the
# fast CPU backend's Vector API, and java.desktop for the demo's charts (CommandLineTest). Built
# here, not with a helper outside the repository, so that CI's clean clone can build it too.
mods=java.base,java.management,jdk.management,jdk.unsupported,java.logging,java.xml,java.naming,jdk.zipfs
mods+=,jdk.incubator.vector,java.desktop
jre_tmp=$(mktemp -d)
trap 'rm -rf "$jre_tmp"' EXIT
"${JAVA_HOME:+$JAVA_HOME/bin/}jlink" --add-modules "$mods" --strip-debug --no-man-pages --no-header-files \
  --compress=2 --output "$jre_tmp/jre" >/dev/null
tar czf "$out/jre.tgz" -C "$jre_tmp" jre
# Which commit this is, for the record the run writes.
{ git rev-parse HEAD; git status --porcelain | sed 's/^/  uncommitted: /'; } > "$out/commit.txt" 2>/dev/null || echo unknown > "$out/commit.txt"

bundle=$(du -sb "$out" | cut -f1)
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
awk -v b="$bundle" -v t="$tree" 'BEGIN { printf "gpu-bundle: %.1f MiB; working tree that travels: %.1f MiB; together %.1f MiB of the 64 MiB the device tool carries\n", b / 1048576, t / 1048576, (b + t) / 1048576 }'
if (( bundle + tree > limit )); then
  echo "gpu-bundle: too large to travel: $((bundle + tree)) bytes > $limit" >&2
  exit 1
fi
