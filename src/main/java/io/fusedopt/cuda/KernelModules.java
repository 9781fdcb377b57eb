package io.fusedopt.cuda;

import io.fusedopt.BackendUnavailableException;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.UpdateKernel;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import jcuda.driver.CUcontext;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * The kernel binaries (one fatbin per family, built by kernels/build.sh into the classpath) loaded
 * into one context, and the entry point of every {@link UpdateKernel}.
 *
 * <p>A family is loaded at the first use of one of its entry points, except the control family,
 * which every step uses and which is loaded at once, so that a driver too old for the binaries
 * fails when the optimizer is built (all families are built with the same targets). Loading all
 * twenty families for every optimizer made each build cost a module load per family: on an H200,
 * 10,000 optimizers built and closed in turn did not finish in 60 s (the first GPU run, 2026-12-04).
 * {@link #loadingAll} loads every family and resolves every entry point, for the probe.
 */
final class KernelModules implements AutoCloseable {
    static final String RESOURCE_DIR = "/io/fusedopt/kernels/";
    private static final String CONTROL = "control";

    /** The manifest, read once per process. */
    private static volatile Properties manifest;
    /** Each family's fatbin, read from the classpath once per process (under 2 MB for all). */
    private static final Map<String, byte[]> IMAGES = new ConcurrentHashMap<>();

    private final CUcontext context;
    private final String deviceDescription;
    private final List<String> families;
    private final Map<String, CUmodule> modules = new HashMap<>();
    private boolean closed;
    /** By {@link UpdateKernel#code()}; filled at a kernel's first use. */
    private final CUfunction[] functions = new CUfunction[Algorithms.kernels().size()];
    private final CUfunction[] mixedFunctions = new CUfunction[Algorithms.kernels().size()];
    /** The entry points for tensors whose every operand is 16-bit, by code (null for kernels without one). */
    private final CUfunction[] narrowFunctions = new CUfunction[Algorithms.kernels().size()];
    /** The entry points for 8-bit states, by code (null for layer-wise kernels, which have none). */
    private final CUfunction[] quantizedFunctions = new CUfunction[Algorithms.kernels().size()];
    /** The norm passes of the layer-wise kernels, by code (null for elementwise kernels). */
    private final CUfunction[] normsFunctions = new CUfunction[Algorithms.kernels().size()];
    private final CUfunction[] normsMixedFunctions = new CUfunction[Algorithms.kernels().size()];
    /** The matrix kernels' passes before the update, by code (null for the other kernels). */
    private final CUfunction[] inputFunctions = new CUfunction[Algorithms.kernels().size()];
    private final CUfunction[] normalizeFunctions = new CUfunction[Algorithms.kernels().size()];
    private final CUfunction[] productFunctions = new CUfunction[Algorithms.kernels().size()];
    private final CUfunction[] fastFunctions = new CUfunction[Algorithms.kernels().size()];
    /** Every table above, emptied together at close. */
    private final List<CUfunction[]> tables = List.of(functions, mixedFunctions, narrowFunctions, quantizedFunctions, normsFunctions,
            normsMixedFunctions, inputFunctions, normalizeFunctions, productFunctions, fastFunctions);
    /** Which kernels' entry points are in the tables, by code. */
    private final boolean[] resolved = new boolean[Algorithms.kernels().size()];

    /** The manifest written by kernels/build.sh. */
    static Properties manifest() {
        Properties p = manifest;
        if (p != null) return p;
        try (InputStream in = KernelModules.class.getResourceAsStream(RESOURCE_DIR + "kernels.properties")) {
            if (in == null) {
                throw new IllegalStateException("kernel manifest " + RESOURCE_DIR + "kernels.properties is missing from"
                        + " the classpath; the build runs kernels/build.sh to install it");
            }
            p = new Properties();
            p.load(in);
            manifest = p;
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The lowest driver CUDA version (cuDriverGetVersion encoding) that loads these binaries. */
    static int requiredDriverVersion() {
        return Integer.parseInt(manifest().getProperty("required.driver.cuda.version").trim());
    }

    /** Loads the control family into {@code context} (which must be current); the others load at their first use. */
    KernelModules(CUcontext context, String deviceDescription) {
        this.context = context;
        this.deviceDescription = deviceDescription;
        this.families = Arrays.stream(manifest().getProperty("families").split(",")).map(String::trim).toList();
        try {
            module(CONTROL);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Every family loaded and every update kernel's entry points resolved: what the probe checks. */
    static KernelModules loadingAll(CUcontext context, String deviceDescription) {
        KernelModules all = new KernelModules(context, deviceDescription);
        try {
            for (String family : all.families) all.module(family);
            for (UpdateKernel kernel : Algorithms.kernels()) all.resolve(kernel);
            return all;
        } catch (RuntimeException e) {
            all.close();
            throw e;
        }
    }

    /** The families loaded so far, in the manifest's order. */
    synchronized List<String> loadedFamilies() {
        return families.stream().filter(modules::containsKey).toList();
    }

    /** Every family the manifest lists. */
    List<String> families() {
        return families;
    }

    /** Fills the tables with {@code kernel}'s entry points, loading its family if it is not yet. */
    private synchronized void resolve(UpdateKernel kernel) {
        if (resolved[kernel.code()]) return;
        functions[kernel.code()] = function(kernel.family(), kernel.entryPoint());
        mixedFunctions[kernel.code()] = function(kernel.family(), kernel.mixedEntryPoint());
        if (kernel.hasNarrowEntryPoint()) narrowFunctions[kernel.code()] = function(kernel.family(), kernel.narrowEntryPoint());
        if (kernel instanceof LayerwiseKernel layerwise) {
            normsFunctions[kernel.code()] = function(kernel.family(), layerwise.normsEntryPoint());
            normsMixedFunctions[kernel.code()] = function(kernel.family(), layerwise.normsMixedEntryPoint());
        } else if (kernel instanceof MatrixKernel matrix) {
            inputFunctions[kernel.code()] = function(kernel.family(), matrix.inputEntryPoint());
            normalizeFunctions[kernel.code()] = function(kernel.family(), matrix.normalizeEntryPoint());
            productFunctions[kernel.code()] = function(kernel.family(), matrix.productEntryPoint());
            fastFunctions[kernel.code()] = function(kernel.family(), matrix.fastEntryPoint());
        } else if (kernel.hasQuantizedEntryPoint()) {
            quantizedFunctions[kernel.code()] = function(kernel.family(), kernel.quantizedEntryPoint());
        }
        resolved[kernel.code()] = true;
    }

    /** {@code kernel}'s entry point in {@code table}, resolved at the kernel's first use. */
    private CUfunction entry(CUfunction[] table, UpdateKernel kernel) {
        resolve(kernel);
        return table[kernel.code()];
    }

    /** The float32-only entry point, or with {@code mixed} the one for any storage formats. */
    CUfunction function(UpdateKernel kernel, boolean mixed) {
        return entry(mixed ? mixedFunctions : functions, kernel);
    }

    /** The entry point for tensors whose every operand is 16-bit, of a kernel that has one. */
    CUfunction narrowFunction(UpdateKernel kernel) {
        CUfunction function = entry(narrowFunctions, kernel);
        if (function == null) throw new IllegalArgumentException(kernel + " has no entry point for 16-bit operands only");
        return function;
    }

    /** The entry point for 8-bit states of an elementwise kernel. */
    CUfunction quantizedFunction(UpdateKernel kernel) {
        CUfunction function = entry(quantizedFunctions, kernel);
        if (function == null) throw new IllegalArgumentException(kernel + " has no entry point for 8-bit states");
        return function;
    }

    /** A layer-wise kernel's norm pass: float32 only, or with {@code mixed} for any storage formats. */
    CUfunction normsFunction(LayerwiseKernel kernel, boolean mixed) {
        return entry(mixed ? normsMixedFunctions : normsFunctions, kernel);
    }

    /** A matrix kernel's input pass (any storage formats). */
    CUfunction inputFunction(MatrixKernel kernel) {
        return entry(inputFunctions, kernel);
    }

    /** A matrix kernel's normalization. */
    CUfunction normalizeFunction(MatrixKernel kernel) {
        return entry(normalizeFunctions, kernel);
    }

    /** A matrix kernel's Newton-Schulz products. */
    CUfunction productFunction(MatrixKernel kernel) {
        return entry(productFunctions, kernel);
    }

    /** A matrix kernel's elementwise passes around fast mode's cuBLAS products. */
    CUfunction fastFunction(MatrixKernel kernel) {
        return entry(fastFunctions, kernel);
    }

    /** Any entry point of a family, loading the family at its first use. */
    synchronized CUfunction function(String family, String entryPoint) {
        CUfunction function = new CUfunction();
        Driver.check(JCudaDriver.cuModuleGetFunction(function, module(family), entryPoint), "cuModuleGetFunction(" + entryPoint + ")");
        return function;
    }

    /** The family's module, loaded into this context at the first call. */
    private synchronized CUmodule module(String family) {
        if (closed) throw new IllegalStateException("the kernel modules of " + deviceDescription + " are unloaded");
        CUmodule module = modules.get(family);
        if (module != null) return module;
        if (!families.contains(family)) throw new IllegalStateException("kernel family " + family + " is not in the kernel manifest");
        // The engine keeps its context current on the threads that call it; set it all the same, since
        // a module loads into whichever context is current.
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        module = load(family, manifest(), deviceDescription);
        modules.put(family, module);
        return module;
    }

    private static CUmodule load(String family, Properties manifest, String deviceDescription) {
        byte[] image = IMAGES.computeIfAbsent(family, f -> readResource(f + ".fatbin"));
        CUmodule module = new CUmodule();
        int result = JCudaDriver.cuModuleLoadData(module, image);
        if (result == CUresult.CUDA_ERROR_NO_BINARY_FOR_GPU || result == CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION
                || result == CUresult.CUDA_ERROR_INVALID_PTX || result == CUresult.CUDA_ERROR_INVALID_IMAGE) {
            throw new BackendUnavailableException("the " + family + " kernels cannot be loaded on " + deviceDescription
                    + " (" + CUresult.stringFor(result) + "): they were built by nvcc " + manifest.getProperty("nvcc.release")
                    + " with SASS for sm_" + manifest.getProperty("sass.archs").replace(",", ", sm_")
                    + " and PTX for compute_" + manifest.getProperty("ptx.arch")
                    + ", which needs a driver for CUDA " + manifest.getProperty("nvcc.release")
                    + " or newer; update the driver or build the kernels with your own nvcc (kernels/build.sh)");
        }
        Driver.check(result, "cuModuleLoadData(" + family + ".fatbin)");
        return module;
    }

    private static byte[] readResource(String name) {
        try (InputStream in = KernelModules.class.getResourceAsStream(RESOURCE_DIR + name)) {
            if (in == null) {
                throw new IllegalStateException("kernel binary " + RESOURCE_DIR + name + " is missing from the classpath");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public synchronized void close() {
        closed = true;
        for (CUmodule module : modules.values()) {
            JCudaDriver.cuModuleUnload(module); // best effort: the context is released next
        }
        modules.clear();
        for (CUfunction[] table : tables) Arrays.fill(table, null);
        Arrays.fill(resolved, false);
    }
}
