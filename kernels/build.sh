#!/usr/bin/env bash
# Builds the CUDA kernels (kernels/*.cu) into fatbins, one per family.
#
#   build.sh --install DIR  copy the prebuilt copy (kernels/prebuilt) into DIR when it was built from
#                           the current sources by the nvcc release on the PATH (or there is no
#                           nvcc); otherwise compile with nvcc into DIR (stale sources without nvcc
#                           are an error). Called by the Maven build (generate-resources).
#   build.sh --update       rebuild kernels/prebuilt (run after editing a kernel; commit the result).
#   build.sh --check        rebuild into a temporary folder and fail if kernels/prebuilt differs,
#                           if ptxas reports any register spill, or if the PTX of any kernel for any
#                           architecture holds an approximate (.approx) or flush-to-zero (.ftz)
#                           instruction. Needs nvcc. Used by CI.
#
# Why a fatbin: SASS for every current architecture (no JIT at load, our flags applied by ptxas)
# plus PTX for the newest one, so GPUs newer than this list still load the kernels through the
# driver's JIT. The output is deterministic, so CI can compare it byte for byte.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prebuilt="$here/prebuilt"
# Every kernels/*.cu is a family (one fatbin): adding an algorithm's .cu adds it here too.
families=()
for f in "$here"/*.cu; do families+=("$(basename "$f" .cu)"); done
archs=(75 80 90 100 120)
ptx_arch=120
# Exact IEEE float32: no contraction into FMA, IEEE division and square root, keep subnormals.
# -compress-mode=size: the fatbins about 4x smaller than nvcc's default compression (the driver
# inflates them at cuModuleLoadData; the code is the same), so that the binaries, which travel
# twice in the GPU bundle (kernels/prebuilt and the classes), keep it within its 64 MiB.
nvcc_flags=(-fatbin -O3 -std=c++17 -fmad=false -prec-div=true -prec-sqrt=true -ftz=false -compress-mode=size)

gencode_flags() {
  for a in "${archs[@]}"; do printf -- '-gencode=arch=compute_%s,code=sm_%s\n' "$a" "$a"; done
  printf -- '-gencode=arch=compute_%s,code=compute_%s\n' "$ptx_arch" "$ptx_arch"
}

# A digest of everything the binaries are made from: the sources (every header, in a fixed order)
# and the flags.
sources_digest() {
  (cd "$here" && cat $(LC_ALL=C ls *.cuh) "${families[@]/%/.cu}"; echo "${nvcc_flags[*]}"; gencode_flags) \
    | sha256sum | cut -d' ' -f1
}

compile_into() {
  local out=$1 release log
  mkdir -p "$out"
  release=$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
  log=$(mktemp)
  mapfile -t gencodes < <(gencode_flags)
  # One nvcc per family, as many at a time as there are cores (each output file is the same
  # whatever the order); the logs are joined in family order.
  # Each job leaves its exit status in a file: what `wait` reports depends on when a job is reaped.
  local f failed=0 parallel
  parallel=$(nproc 2>/dev/null || echo 2)
  for f in "${families[@]}"; do
    while (( $(jobs -rp | wc -l) >= parallel )); do wait -n || true; done
    { nvcc "${nvcc_flags[@]}" "${gencodes[@]}" -Xptxas -v -I "$here" -o "$out/$f.fatbin" "$here/$f.cu" 2>"$log.$f"
      echo $? > "$log.$f.rc"; } &
  done
  wait
  for f in "${families[@]}"; do
    cat "$log.$f" >> "$log"
    [[ "$(cat "$log.$f.rc" 2>/dev/null)" == 0 ]] || failed=1
    rm -f "$log.$f" "$log.$f.rc"
  done
  if (( failed )); then cat "$log" >&2; rm -f "$log"; exit 1; fi
  if grep -E '[1-9][0-9]* bytes spill (stores|loads)' "$log" >&2; then
    echo "build.sh: ptxas reports register spills (lines above); kernels must not spill" >&2
    rm -f "$log"; exit 1
  fi
  rm -f "$log"
  {
    echo "# Written by kernels/build.sh; read by io.fusedopt.cuda.KernelModules."
    echo "nvcc.release=$release"
    # cuDriverGetVersion encodes CUDA X.Y as X*1000+Y*10; binaries of a CUDA X toolkit need a driver of CUDA X.
    echo "required.driver.cuda.version=$(( ${release%%.*} * 1000 ))"
    echo "families=$(IFS=,; echo "${families[*]}")"
    echo "sass.archs=$(IFS=,; echo "${archs[*]}")"
    echo "ptx.arch=$ptx_arch"
    echo "sources.sha256=$(sources_digest)"
  } > "$out/kernels.properties"
}

# The numerics guard: the PTX of every family for every architecture we ship must use exact IEEE
# instructions only; one .approx (fast division, sqrt, rcp) or .ftz (subnormals flushed) would break
# the bit-exact contract with the Java reference on that architecture only.
ptx_guard_family() {
  local f=$1 tmp=$2 a bad=0
  for a in "${archs[@]}" "$ptx_arch"; do
    nvcc -ptx "${nvcc_flags[@]:1}" -arch=compute_"$a" -I "$here" -o "$tmp/$f.$a.ptx" "$here/$f.cu" || return 1
    if grep -nE '\.(approx|ftz)\b' "$tmp/$f.$a.ptx" >&2; then
      echo "build.sh: $f.cu for compute_$a has approximate or flush-to-zero instructions (lines above)" >&2
      bad=1
    fi
  done
  return $bad
}

ptx_guard() {
  local tmp f bad=0 parallel
  tmp=$(mktemp -d)
  parallel=$(nproc 2>/dev/null || echo 2)
  for f in "${families[@]}"; do  # a family per core at a time; each leaves its verdict in a file
    while (( $(jobs -rp | wc -l) >= parallel )); do wait -n || true; done
    { ptx_guard_family "$f" "$tmp"; echo $? > "$tmp/$f.rc"; } &
  done
  wait
  for f in "${families[@]}"; do [[ "$(cat "$tmp/$f.rc" 2>/dev/null)" == 0 ]] || bad=1; done
  rm -rf "$tmp"
  [[ $bad == 0 ]] || exit 1
  echo "build.sh: PTX of ${#families[@]} families x $(( ${#archs[@]} + 1 )) architectures: no .approx, no .ftz"
}

mode=${1:-}
case "$mode" in
  --install)
    dest=${2:?usage: build.sh --install DIR}
    want=$(sources_digest)
    have=$(sed -n 's/^sources.sha256=//p' "$prebuilt/kernels.properties")
    # The prebuilt copy when this nvcc would rebuild it byte for byte (same sources, same toolkit
    # release: --check proves that build deterministic), so only changed sources or another
    # toolkit (say, an older one for an older driver) cost a compile.
    local_release=""
    if command -v nvcc >/dev/null 2>&1; then
      local_release=$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
    fi
    prebuilt_release=$(sed -n 's/^nvcc.release=//p' "$prebuilt/kernels.properties")
    if [[ -n "$local_release" && ( "$want" != "$have" || "$local_release" != "$prebuilt_release" ) ]]; then
      compile_into "$dest"
      echo "build.sh: compiled kernels with $(command -v nvcc) (CUDA $local_release) into $dest"
    else
      if [[ "$want" != "$have" ]]; then
        echo "build.sh: nvcc is not on the PATH and kernels/prebuilt was built from other sources" >&2
        echo "          (sources digest $want, prebuilt $have). Run kernels/build.sh --update on a machine with nvcc." >&2
        exit 1
      fi
      mkdir -p "$dest"
      cp "$prebuilt"/*.fatbin "$prebuilt/kernels.properties" "$dest/"
      echo "build.sh: installed the prebuilt kernels (built from these sources) into $dest"
    fi
    ;;
  --update)
    rm -rf "$prebuilt"; compile_into "$prebuilt"
    echo "build.sh: rebuilt $prebuilt"
    ;;
  --check)
    command -v nvcc >/dev/null 2>&1 || { echo "build.sh --check: nvcc is not on the PATH" >&2; exit 2; }
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    compile_into "$tmp"
    if ! diff -r "$tmp" "$prebuilt" >/dev/null; then
      echo "build.sh --check: kernels/prebuilt is stale (it differs from a fresh build of kernels/*.cu)." >&2
      echo "                  Run kernels/build.sh --update and commit kernels/prebuilt." >&2
      diff -r "$tmp" "$prebuilt" >&2 || true
      exit 1
    fi
    echo "build.sh --check: kernels/prebuilt matches a fresh build; no register spills"
    ptx_guard
    ;;
  --ptx-guard)
    command -v nvcc >/dev/null 2>&1 || { echo "build.sh --ptx-guard: nvcc is not on the PATH" >&2; exit 2; }
    ptx_guard
    ;;
  *) echo "usage: build.sh --install DIR | --update | --check | --ptx-guard" >&2; exit 2 ;;
esac
