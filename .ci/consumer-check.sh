#!/usr/bin/env bash
# A consumer project depends on io.fusedopt:fusedopt as Maven on other platforms resolves it:
# macOS on Apple silicon, macOS on Intel and Linux aarch64 (no JCuda natives on Maven Central for
# them), and this machine (Linux x86-64) as the control. For each platform it checks that
#   1. Maven resolves the consumer's class path (the platform is simulated by os.name and os.arch in
#      the Maven JVM, which is what OS-activated profiles read: jcuda-parent's and fusedopt's),
#      with JCuda's natives jar only on Linux x86-64;
#   2. a few Adam steps on AUTO, in a JVM with the same simulated os.name and os.arch, run on CPU_FAST
#      with the same bits as the CPU reference, the backend reason says in one sentence why CUDA is
#      unavailable, and nothing of JCuda's is extracted into the temporary folder.
# The fusedopt jar and pom are installed into a temporary local repository that shows ~/.m2's
# other contents through symbolic links (nothing of fusedopt is installed into ~/.m2).
#
# Usage: .ci/consumer-check.sh   (after mvn compile or mvn test; builds the jar with jar:jar)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
project=$PWD
m2=${M2_REPOSITORY:-$HOME/.m2/repository}
version=$(sed -n 's:^  <version>\(.*\)</version>:\1:p' pom.xml | head -1)
dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.9.0
install_plugin=org.apache.maven.plugins:maven-install-plugin:3.1.2
# Online by default (a clean CI cache downloads the two plugins); CONSUMER_CHECK_OFFLINE=1 forbids the network.
offline=${CONSUMER_CHECK_OFFLINE:+-o}

work=$(mktemp -d "${TMPDIR:-/tmp}/fusedopt-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "consumer-check: $*" >&2; exit 1; }

# The library jar as Maven packages it (manifest included), from the compiled classes.
[[ -f target/classes/io/fusedopt/DeviceOptimizer.class ]] || mvn -B $offline -q -Dstyle.color=never compile
mvn -B $offline -q -Dstyle.color=never jar:jar
jar=target/fusedopt-$version.jar
[[ -f "$jar" ]] || fail "jar:jar did not produce $jar"

# A local repository: ~/.m2's entries as links, io/ as a real folder without any installed fusedopt.
repo=$work/repo
mkdir -p "$repo/io"
for entry in "$m2"/*; do
  [[ "$(basename "$entry")" == io ]] || ln -s "$entry" "$repo/$(basename "$entry")"
done
for entry in "$m2"/io/*; do
  [[ -e "$entry" && "$(basename "$entry")" != fusedopt ]] && ln -s "$entry" "$repo/io/$(basename "$entry")"
done
mvn -B $offline -q -Dstyle.color=never -Dmaven.repo.local="$repo" "$install_plugin:install-file" -Dfile="$jar" -DpomFile=pom.xml

# The consumer: a pom with one dependency, and a program that trains with AUTO.
consumer=$work/consumer
mkdir -p "$consumer/src/consumer"
cat > "$consumer/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>consumer</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.fusedopt</groupId>
      <artifactId>fusedopt</artifactId>
      <version>$version</version>
    </dependency>
  </dependencies>
</project>
EOF
cat > "$consumer/src/consumer/Main.java" <<'EOF'
package consumer;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Parameter;
import io.fusedopt.TensorBuffer;
import java.util.Arrays;

public final class Main {
    public static void main(String[] args) {
        float[] auto, reference;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).build()) {   // AUTO
            System.out.println("backend=" + opt.backend());
            System.out.println("reason=" + opt.backendReason());
            auto = train(opt);
        }
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU).build()) {
            reference = train(opt);
        }
        System.out.println("sameBitsAsReference=" + Arrays.equals(auto, reference));
    }

    static float[] train(DeviceOptimizer opt) {
        TensorBuffer w = opt.allocate(1000), g = opt.allocate(1000);
        float[] values = new float[1000];
        for (int i = 0; i < values.length; i++) values[i] = (float) Math.sin(i);
        w.copyFrom(values);
        Parameter p = opt.addGroup().add("w", w, g);
        for (int t = 0; t < 5; t++) {
            for (int i = 0; i < values.length; i++) values[i] = (float) Math.cos(i * (t + 1));
            g.copyFrom(values);
            opt.step();
        }
        return p.param().toArray();
    }
}
EOF

# Resolves the consumer's class path into the file $1 (Maven's output into $1.log, shown on failure);
# the other arguments go to mvn. The simulated platform, if any, comes from JAVA_TOOL_OPTIONS.
resolve_classpath() {
  local classpath_file=$1; shift
  (cd "$consumer" && mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$repo" "$@" "$dependency_plugin:build-classpath" \
      -Dmdep.outputFile="$classpath_file" >"$classpath_file.log" 2>&1) || { cat "$classpath_file.log" >&2; return 1; }
}

# Maven downloads what a clean cache lacks (the dependency plugin and its own dependencies) here, as
# this machine really is: a JVM told os.name=Mac OS X cannot open a socket (the JDK then looks for
# jdk.net.MacOSXSocketOptions, which Linux builds lack), so the simulated resolutions below run offline.
resolve_classpath "$work/classpath-as-resolved-here" $offline \
  || fail "Maven could not resolve io.fusedopt:fusedopt:$version for this machine"

check() {
  local os_name=$1 os_arch=$2 expected_reason=$3 natives=$4
  local label="$os_name $os_arch"
  local out=$work/$os_arch-${os_name// /_}
  mkdir -p "$out/tmp"
  # 1. Resolution as Maven on that platform sees it (JAVA_TOOL_OPTIONS keeps "Mac OS X" one argument),
  #    offline: everything it may need was downloaded above.
  JAVA_TOOL_OPTIONS="\"-Dos.name=$os_name\" -Dos.arch=$os_arch" resolve_classpath "$out/classpath" -o \
    || fail "$label: Maven could not resolve io.fusedopt:fusedopt:$version"
  local classpath
  classpath=$(cat "$out/classpath")
  [[ "$classpath" == *"/org/jcuda/jcuda/"* ]] || fail "$label: org.jcuda:jcuda missing: $classpath"
  if [[ "$natives" == with-natives ]]; then
    [[ "$classpath" == *"jcuda-natives-"*"-linux-x86_64.jar"* ]] || fail "$label: JCuda's linux-x86_64 natives missing: $classpath"
  else
    [[ "$classpath" != *natives* ]] || fail "$label: a natives jar was resolved: $classpath"
  fi
  [[ "$classpath" != *jcublas* && "$classpath" != *picocli* ]] || fail "$label: an optional dependency leaked: $classpath"
  # 2. Training on AUTO in a JVM that reports the same platform.
  # (compiled once: fusedopt's API is the same jar everywhere)
  [[ -d "$work/classes" ]] || javac -d "$work/classes" -cp "$classpath" "$consumer/src/consumer/Main.java"
  local run
  run=$(java --add-modules jdk.incubator.vector "-Dos.name=$os_name" "-Dos.arch=$os_arch" -Djava.io.tmpdir="$out/tmp" \
      -cp "$work/classes:$classpath" consumer.Main 2>"$out/stderr") || { cat "$out/stderr" >&2; fail "$label: the consumer failed"; }
  grep -qx "backend=CPU_FAST" <<< "$run" || fail "$label: expected CPU_FAST: $run"
  grep -qx "reason=AUTO: $expected_reason" <<< "$run" || fail "$label: expected the reason \"AUTO: $expected_reason\": $run"
  grep -qx "sameBitsAsReference=true" <<< "$run" || fail "$label: CPU_FAST differs from the reference: $run"
  if [[ -n "$(find "$out/tmp" -name '*JCuda*' -print -quit)" ]]; then
    fail "$label: JCuda extracted native code: $(find "$out/tmp" -name '*JCuda*')"
  fi
  echo "consumer-check: $label: resolved ($(tr ':' '\n' <<< "$classpath" | sed 's:.*/::' | paste -sd ' ')); $(grep '^reason=' <<< "$run")"
}

no_natives() { echo "CUDA backend unavailable: JCuda 12.6.0 has no native library for $1 (fusedopt runs on the CPU backends here)"; }
check "Mac OS X" aarch64 "$(no_natives "Mac OS X aarch64")" without-natives
check "Mac OS X" x86_64 "$(no_natives "Mac OS X x86_64")" without-natives
check Linux aarch64 "$(no_natives "Linux aarch64")" without-natives
# The control: this machine's platform (Linux x86-64) gets the natives. Without an NVIDIA driver (CI)
# the reason names the missing driver; with one, AUTO would choose CUDA, so the control is left out.
if [[ "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] && ! grep -qa 'libcuda\.so\.1' /etc/ld.so.cache 2>/dev/null \
    && ! compgen -G '/usr/lib*/libcuda.so.1' >/dev/null && ! compgen -G '/usr/lib/*/libcuda.so.1' >/dev/null \
    && ! compgen -G '/lib*/libcuda.so.1' >/dev/null && ! compgen -G '/lib/*/libcuda.so.1' >/dev/null; then
  (unset LD_LIBRARY_PATH; check Linux amd64 "CUDA backend unavailable: no NVIDIA driver is installed: libcuda.so.1 is not in"\
" LD_LIBRARY_PATH, /etc/ld.so.cache or the system library folders" with-natives)
else
  echo "consumer-check: Linux amd64 control left out (not Linux x86-64, or an NVIDIA driver is installed)"
fi
echo "consumer-check: OK"
