#!/usr/bin/env bash
# Builds the CUDA driver emulator: OUT/libcuda.so.1, a test double of the NVIDIA driver library
# that JCuda's real native library loads (through LD_LIBRARY_PATH, in a test execution of its
# own), running kernels/*.cu compiled for the CPU; OUT/libcublas.so.12, a test double of cuBLAS
# over it for JCublas2's natives (cublas.cpp); OUT/libnccl.so.2, a test double of NCCL over it for
# fusedopt's JNA binding (nccl.cpp); and OUT/selftest, the emulator's own tests.
#
#   build.sh OUT KERNEL_BINARIES JCUDA_NATIVES_JAR JCUBLAS_NATIVES_JAR
#
# OUT/status says "ready", or why the emulator cannot be built here (no g++, no CUDA headers, not
# x86-64 Linux); then the build goes on and the emulator's tests skip with that reason. Called by
# the Maven build (process-test-classes); rebuilds only when an input changed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kernels_src=$(cd "$here/../../../kernels" && pwd)
usage="usage: build.sh OUT KERNEL_BINARIES JCUDA_NATIVES_JAR JCUBLAS_NATIVES_JAR"
out=${1:?$usage}
binaries=${2:?$usage}
jar=${3:?$usage}
cublas_jar=${4:?$usage}
mkdir -p "$out"

unavailable() {
  printf 'unavailable: %s\n' "$1" > "$out/status"
  rm -f "$out/libcuda.so.1" "$out/libcublas.so.12" "$out/libnccl.so.2"
  echo "cuda-emulator: not built: $1"
  exit 0
}

# The driver API entry points fusedopt reaches: each must be emulated, not a stub.
required=(cuInit cuDriverGetVersion cuDeviceGetCount cuDeviceGet cuDeviceGetName cuDeviceGetAttribute
  cuDevicePrimaryCtxRetain cuDevicePrimaryCtxRelease_v2 cuCtxSetCurrent cuCtxSynchronize cuGetErrorString
  cuMemAlloc_v2 cuMemFree_v2 cuMemGetInfo_v2 cuMemGetAddressRange_v2 cuPointerGetAttribute cuMemcpyHtoD_v2
  cuMemcpyDtoH_v2 cuMemcpyHtoDAsync_v2 cuMemcpyDtoHAsync_v2 cuMemcpyDtoDAsync_v2 cuMemsetD8_v2 cuMemsetD16Async
  cuMemsetD32Async cuModuleLoadData cuModuleUnload cuModuleGetFunction cuLaunchKernel cuStreamCreate
  cuStreamDestroy_v2 cuStreamSynchronize cuStreamQuery cuStreamGetCtx cuStreamBeginCapture_v2 cuStreamEndCapture
  cuGraphInstantiateWithFlags cuGraphLaunch cuGraphDestroy cuGraphExecDestroy)
# The cuBLAS entry points fusedopt reaches (CublasGemm, CublasSgdBaseline): the double defines
# exactly these (emulated, no stubs), and JCublas2's natives must import each by this name.
cublas_required=(cublasCreate_v2 cublasDestroy_v2 cublasSetStream_v2 cublasGetStream_v2 cublasSetMathMode cublasGetMathMode
  cublasSetPointerMode_v2 cublasGetPointerMode_v2 cublasSaxpy_v2 cublasSgemmStridedBatched cublasGemmStridedBatchedEx)
# The NCCL entry points fusedopt's binding (io.fusedopt.cuda.Nccl) declares: the double defines exactly these.
nccl_required=(ncclGetVersion ncclGetUniqueId ncclCommInitRank ncclCommDestroy ncclCommAbort ncclCommCuDevice
  ncclGetErrorString ncclGetLastError ncclAllGather ncclBroadcast ncclAllReduce ncclReduceScatter)

[[ "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] || unavailable "the emulator runs on x86-64 Linux only (this is $(uname -s)-$(uname -m))"
command -v g++ >/dev/null 2>&1 || unavailable "g++ is not on the PATH"
cuda_include=""
for dir in ${CUDA_HOME:+"$CUDA_HOME/include"} ${CUDA_PATH:+"$CUDA_PATH/include"} \
    $(command -v nvcc >/dev/null 2>&1 && dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")/include \
    /usr/local/cuda/include /usr/include; do
  if [[ -f "$dir/cuda.h" && -f "$dir/cuda_bf16.h" && -f "$dir/cuda_fp16.h" ]]; then cuda_include=$dir; break; fi
done
[[ -n "$cuda_include" ]] || unavailable "the CUDA toolkit headers (cuda.h, cuda_bf16.h, cuda_fp16.h) were not found; set CUDA_HOME"
[[ -f "$jar" ]] || unavailable "JCuda's native jar $jar is missing"
[[ -f "$cublas_jar" ]] || unavailable "JCublas's native jar $cublas_jar is missing"
command -v objdump >/dev/null 2>&1 || unavailable "objdump (binutils) is not on the PATH"

families=()
for f in "$kernels_src"/*.cu; do families+=("$(basename "$f" .cu)"); done
for f in "${families[@]}"; do
  [[ -f "$binaries/$f.fatbin" ]] || { echo "cuda-emulator: $binaries/$f.fatbin is missing" >&2; exit 1; }
done

# Flags of the kernel units: exact IEEE arithmetic, every access checked through callbacks. gcc's
# -fsanitize=thread calls __tsan_read4(address) and the like before every load and store except
# those of a thread's own locals that never escape (execution.cpp implements them: no sanitizer
# runtime is linked); -fsanitize=address would skip constant-offset accesses to static variables,
# which __shared__ ones are here (`lanes[0]`, a `__shared__ int flag`). -g1: line tables, so that
# addr2line turns the code offset of a race report into file:line (DWARF 4: binutils 2.40 names the
# wrong file for code of an #included .cu in DWARF 5).
kernel_flags=(-std=c++17 -O2 -g1 -gdwarf-4 -fPIC -fvisibility=hidden -ffp-contract=off -fno-fast-math -fno-strict-aliasing
  -fsanitize=thread --param tsan-instrument-func-entry-exit=0 -fsanitize=alignment -fno-sanitize-recover=alignment
  -x c++ -include "$here/device_runtime.h" -I "$here" -I "$kernels_src" -I "$cuda_include")
core_flags=(-std=c++17 -O2 -fPIC -Wall -Wextra -Werror -I "$here" -I "$cuda_include")

digest=$( (cat "$here"/*.h "$here"/*.cpp "$here"/*.cu "$here/build.sh" "$kernels_src"/*.cu "$kernels_src"/*.cuh \
  "$binaries"/*.fatbin; sha256sum "$jar" "$cublas_jar"; g++ --version; echo "$cuda_include ${kernel_flags[*]} ${core_flags[*]}") | sha256sum | cut -d' ' -f1)
if [[ -f "$out/libcuda.so.1" && -f "$out/libcublas.so.12" && -f "$out/libnccl.so.2" && -f "$out/selftest" \
    && "$(cat "$out/.digest" 2>/dev/null)" == "$digest" ]]; then
  echo "ready" > "$out/status"
  echo "cuda-emulator: up to date ($out/libcuda.so.1)"
  exit 0
fi

work="$out/build"
rm -rf "$work"; mkdir -p "$work"

# 1. The entry points JCuda's driver library imports: all must exist, or a call aborts the JVM.
unzip -p "$jar" 'lib/libJCudaDriver-*-linux-x86_64.so' > "$work/libJCudaDriver.so"
objdump -T "$work/libJCudaDriver.so" | awk '/\*UND\*/ {print $NF}' | grep '^cu' | sort -u > "$work/jcuda-imports.txt"
unzip -p "$cublas_jar" 'lib/libJCublas2-*-linux-x86_64.so' > "$work/libJCublas2.so"
objdump -T "$work/libJCublas2.so" | awk 'NF > 1 && /\*UND\*/ && $(NF-1) == "(libcublas.so.12)" {print $NF}' | sort -u > "$work/jcublas-imports.txt"

# 2. One unit per kernel family: the .cu file as it is, then its kernels registered by name.
unit() {  # unit NAME SOURCE IMAGE_SYMBOL_OR_STRING
  local name=$1 source=$2 image=$3 kernels
  kernels=$(g++ "${kernel_flags[@]}" -DFO_EMU_SCAN_KERNELS -E "$source" | grep -o 'FO_EMU_KERNEL_MARK *void *[A-Za-z_0-9]*' \
    | awk '{print $NF}' | sort -u)
  [[ -n "$kernels" ]] || { echo "cuda-emulator: no kernel found in $source" >&2; exit 1; }
  {
    echo "// Generated by src/test/cuda-emulator/build.sh: the kernels of $source, registered."
    echo "#include \"$source\""
    echo "#include \"kernel_registry.h\""
    if [[ $image == fo_emu_image_* ]]; then
      echo "extern \"C\" const unsigned char ${image}[], ${image}_end[];"
      echo "static ::fo_emu::FamilyRegistration registration(\"$name\", $image, size_t(${image}_end - $image), {"
    else
      echo "static const char image[] = \"$image\";"
      echo "static ::fo_emu::FamilyRegistration registration(\"$name\", reinterpret_cast<const unsigned char*>(image), sizeof image, {"
    fi
    for k in $kernels; do echo "  FO_EMU_KERNEL($k),"; done
    echo "});"
  } > "$work/family_$name.cpp"
}
{
  echo "// Generated by src/test/cuda-emulator/build.sh: the kernel binaries the Java side loads."
  echo "  .section .rodata"
  for f in "${families[@]}"; do
    printf '  .balign 16\n  .globl fo_emu_image_%s\n  .hidden fo_emu_image_%s\nfo_emu_image_%s:\n  .incbin "%s"\n' "$f" "$f" "$f" "$binaries/$f.fatbin"
    printf '  .globl fo_emu_image_%s_end\n  .hidden fo_emu_image_%s_end\nfo_emu_image_%s_end:\n' "$f" "$f" "$f"
  done
  echo '  .section .note.GNU-stack,"",@progbits'
} > "$work/images.S"
for f in "${families[@]}"; do unit "$f" "$kernels_src/$f.cu" "fo_emu_image_$f"; done
unit selftest "$here/selftest_kernels.cu" "fusedopt-emulator-selftest-kernels"

# 3. Compile (two at a time), the stubs after the core so that they cover exactly the rest.
pids=()
for src in memory execution symbols driver registry; do
  g++ "${core_flags[@]}" -c "$here/$src.cpp" -o "$work/$src.o" & pids+=($!)
done
for f in "${families[@]}" selftest; do
  g++ "${kernel_flags[@]}" -c "$work/family_$f.cpp" -o "$work/family_$f.o" & pids+=($!)
done
mkdir -p "$work/cublas" "$work/nccl"  # not among the objects of libcuda.so.1
g++ "${core_flags[@]}" -c "$here/cublas.cpp" -o "$work/cublas/cublas.o" & pids+=($!)
g++ "${core_flags[@]}" -c "$here/nccl.cpp" -o "$work/nccl/nccl.o" & pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
g++ -c "$work/images.S" -o "$work/images.o"

nm --defined-only -g "$work/driver.o" | awk '{print $3}' | grep '^cu' | sort -u > "$work/emulated.txt"
missing=$(comm -23 <(printf '%s\n' "${required[@]}" | sort -u) "$work/emulated.txt")
[[ -z "$missing" ]] || { echo "cuda-emulator: entry points fusedopt needs are not emulated: $missing" >&2; exit 1; }
{
  echo "// Generated by src/test/cuda-emulator/build.sh from the symbols JCuda's driver library imports."
  echo "// Every one must exist (an unresolved symbol aborts the JVM); these are not emulated."
  echo "typedef int CUresult;"
  echo "extern \"C\" CUresult fo_emu_not_supported(const char* name);"
  comm -23 "$work/jcuda-imports.txt" "$work/emulated.txt" | while read -r name; do
    echo "extern \"C\" CUresult $name() { return fo_emu_not_supported(\"$name\"); }"
  done
} > "$work/stubs.cpp"
g++ -std=c++17 -O1 -fPIC -c "$work/stubs.cpp" -o "$work/stubs.o"

printf '{\n  global: cu*; fo_emu_enqueue_host_work; fo_emu_enqueue_collective; fo_emu_abort_collective;\n  local: *;\n};\n' > "$work/exports.map"
g++ -shared -o "$work/libcuda.so.1" -Wl,-soname,libcuda.so.1 -Wl,--version-script="$work/exports.map" -Wl,--no-undefined \
  "$work"/*.o -lpthread

# 4. Every import of JCuda's library is exported.
nm -D --defined-only "$work/libcuda.so.1" | awk '{print $3}' | sort -u > "$work/exported.txt"
unresolved=$(comm -23 "$work/jcuda-imports.txt" "$work/exported.txt")
[[ -z "$unresolved" ]] || { echo "cuda-emulator: JCuda imports missing from libcuda.so.1: $unresolved" >&2; exit 1; }

# 5. The cuBLAS double: its symbols carry the version node libcublas.so.12, which the dynamic
# linker requires of the library before JCublas2's natives load at all.
printf 'libcublas.so.12 {\n  global: cublas*;\n  local: *;\n};\n' > "$work/cublas.map"
g++ -shared -o "$work/libcublas.so.12" -Wl,-soname,libcublas.so.12 -Wl,--version-script="$work/cublas.map" -Wl,--no-undefined \
  "$work/cublas/cublas.o" -L"$work" -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN'
objdump -T "$work/libcublas.so.12" | awk 'NF > 1 && !/\*UND\*/ && $(NF-1) == "libcublas.so.12" && $NF ~ /^cublas/ {print $NF}' | sort -u > "$work/cublas-exported.txt"
missing=$(comm -23 <(printf '%s\n' "${cublas_required[@]}" | sort -u) "$work/cublas-exported.txt")
[[ -z "$missing" ]] || { echo "cuda-emulator: cuBLAS entry points fusedopt needs are not in libcublas.so.12: $missing" >&2; exit 1; }
extra=$(comm -13 <(printf '%s\n' "${cublas_required[@]}" | sort -u) "$work/cublas-exported.txt")
[[ -z "$extra" ]] || { echo "cuda-emulator: libcublas.so.12 exports what build.sh does not list: $extra" >&2; exit 1; }
unknown=$(comm -23 "$work/cublas-exported.txt" "$work/jcublas-imports.txt")
[[ -z "$unknown" ]] || { echo "cuda-emulator: JCublas2's natives import none of: $unknown" >&2; exit 1; }

# 6. The NCCL double: unversioned symbols, as NCCL's own; exactly the entry points listed above.
printf '{\n  global: nccl*;\n  local: *;\n};\n' > "$work/nccl.map"
g++ -shared -o "$work/libnccl.so.2" -Wl,-soname,libnccl.so.2 -Wl,--version-script="$work/nccl.map" -Wl,--no-undefined \
  "$work/nccl/nccl.o" -L"$work" -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN' -lpthread
nm -D --defined-only "$work/libnccl.so.2" | awk '$3 ~ /^nccl/ {print $3}' | sort -u > "$work/nccl-exported.txt"
differ=$(comm -3 <(printf '%s\n' "${nccl_required[@]}" | sort -u) "$work/nccl-exported.txt")
[[ -z "$differ" ]] || { echo "cuda-emulator: libnccl.so.2 exports differ from build.sh's list: $differ" >&2; exit 1; }

g++ "${core_flags[@]}" -o "$work/selftest" "$here/selftest.cpp" -L"$work" -l:libcuda.so.1 -Wl,-rpath,'$ORIGIN' -lpthread

mv "$work/libcuda.so.1" "$work/libcublas.so.12" "$work/libnccl.so.2" "$work/selftest" "$out/"
echo "$digest" > "$out/.digest"
echo "ready" > "$out/status"
echo "cuda-emulator: built $out/libcuda.so.1 ($(wc -l < "$work/jcuda-imports.txt") JCuda imports: $(wc -l < "$work/emulated.txt") emulated, the rest stubs; kernels of ${families[*]}; libcublas.so.12: ${#cublas_required[@]} entry points; libnccl.so.2: ${#nccl_required[@]})"
