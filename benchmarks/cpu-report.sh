#!/usr/bin/env bash
# The CPU comparison in one run (io.fusedopt.bench.CpuReport): CPU_FAST's step beside its own
# same-traffic kernel (the roofline), the all-core copy bandwidth (context), torch.optim with
# foreach=True and False, and ND4J's updaters; rounds alternate fusedopt and torch.optim. Writes
# benchmarks/results/DATE-cpu-jdkN[-quick].{md,json}.
#
# Usage: benchmarks/cpu-report.sh [--quick] [--jdk DIR] [--rounds N] [--no-torch] [--no-nd4j] [--online] [--out DIR]
#   --jdk DIR   build and run on this JDK (default: $JAVA_HOME, else the java on the PATH), e.g.
#               --jdk /usr/lib/jvm/temurin-25-jdk-amd64
#   --quick     a smoke test: 100 ms iterations, 2^16 and 2^20, the 168.6M-element sets for SGD only; not a result
#   --no-torch  leave PyTorch out; otherwise Debian's python3-torch is installed when missing
#   --no-nd4j   leave ND4J out (it is a benchmark-only dependency, the nd4j Maven profile)
#   --online    let Maven download what the local repository lacks (ND4J); otherwise Maven runs offline
# The full run takes about 25 minutes on 2 cores (an estimate; the table records the duration); the machine
# should be otherwise idle.
set -euo pipefail
# The dependency plugin is named with its version: the default one (2.8) is not in an offline repository.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command_line="benchmarks/cpu-report.sh $*"

report_args=()
torch=1
nd4j=1
offline=-o
while (($#)); do
    case "$1" in
        --jdk)
            [[ $# -ge 2 && -x "$2/bin/java" ]] || { echo "--jdk needs a JDK folder with bin/java, got '${2:-}'" >&2; exit 2; }
            export JAVA_HOME="$2"; shift 2 ;;
        --no-torch) torch=0; report_args+=("$1"); shift ;;
        --no-nd4j) nd4j=0; report_args+=("$1"); shift ;;
        --online) offline=; shift ;;
        --rounds | --out)
            [[ $# -ge 2 ]] || { echo "$1 needs a value" >&2; exit 2; }
            report_args+=("$1" "$2"); shift 2 ;;
        --quick) report_args+=("$1"); shift ;;
        *) echo "unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"

# Debian's torch is installed for Debian's Python (/usr/bin/python3), whatever python3 the PATH finds first.
python=/usr/bin/python3
if ((torch)) && ! "$python" -c 'import torch' 2>/dev/null; then
    echo "torch is not importable by $python: installing Debian's python3-torch" >&2
    if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
        echo "installing python3-torch needs root or sudo; install it, or pass --no-torch" >&2; exit 1
    fi
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y python3-torch
    "$python" -c 'import torch' || { echo "python3-torch installed but $python cannot import torch" >&2; exit 1; }
fi

profile=()
((nd4j)) && profile=(-Pnd4j)
if ! mvn -B -q $offline "${profile[@]}" test-compile org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath -Dmdep.includeScope=test \
        -Dmdep.outputFile=target/jmh-classpath.txt; then
    if ((nd4j)); then
        echo "the build with the nd4j profile failed (above). Offline, ND4J 1.0.0-M2.1 must already be in the local" \
             "Maven repository: run once with --online, or pass --no-nd4j" >&2
    fi
    exit 1
fi
report_args+=(--python "$python" --command "$command_line")
exec "$java" --add-modules jdk.incubator.vector -cp "target/classes:target/test-classes:$(cat target/jmh-classpath.txt)" \
    io.fusedopt.bench.CpuReport "${report_args[@]}"
