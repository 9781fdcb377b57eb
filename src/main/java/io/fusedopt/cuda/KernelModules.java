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
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * The kernel binaries (one fatbin per family, built by kernels/build.sh into the classpath) loaded
 * into one context, and the entry point of every {@link UpdateKernel}.
 */
final class KernelModules implements AutoCloseable {
    static final String RESOURCE_DIR = "/io/fusedopt/kernels/";

    private final Map<String, CUmodule> modules = new HashMap<>();
    /** By {@link UpdateKernel#code()}. */
    private final CUfunction[] functions = new CUfunction[Algorithms.kernels().size()];
    private final CUfunction[] mixedFunctions = new CUfunction[Algorithms.kernels().size()];
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
    private final List<CUfunction[]> tables = List.of(functions, mixedFunctions, quantizedFunctions, normsFunctions,
            normsMixedFunctions, inputFunctions, normalizeFunctions, productFunctions, fastFunctions);

    /** The manifest written by kernels/build.sh. */
    static Properties manifest() {
        try (InputStream in = KernelModules.class.getResourceAsStream(RESOURCE_DIR + "kernels.properties")) {
            if (in == null) {
                throw new IllegalStateException("kernel manifest " + RESOURCE_DIR + "kernels.properties is missing from"
                        + " the classpath; the build runs kernels/build.sh to install it");
            }
            Properties p = new Properties();
            p.load(in);
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The lowest driver CUDA version (cuDriverGetVersion encoding) that loads these binaries. */
    static int requiredDriverVersion() {
        return Integer.parseInt(manifest().getProperty("required.driver.cuda.version").trim());
    }

    /** Loads every family the manifest lists into the current context. */
    KernelModules(String deviceDescription) {
        Properties manifest = manifest();
        try {
            for (String family : manifest.getProperty("families").split(",")) {
                modules.put(family.trim(), load(family.trim(), manifest, deviceDescription));
            }
            for (UpdateKernel kernel : Algorithms.kernels()) {
                functions[kernel.code()] = function(kernel.family(), kernel.entryPoint());
                mixedFunctions[kernel.code()] = function(kernel.family(), kernel.mixedEntryPoint());
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
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The float32-only entry point, or with {@code mixed} the one for any storage formats. */
    CUfunction function(UpdateKernel kernel, boolean mixed) {
        return (mixed ? mixedFunctions : functions)[kernel.code()];
    }

    /** The entry point for 8-bit states of an elementwise kernel. */
    CUfunction quantizedFunction(UpdateKernel kernel) {
        CUfunction function = quantizedFunctions[kernel.code()];
        if (function == null) throw new IllegalArgumentException(kernel + " has no entry point for 8-bit states");
        return function;
    }

    /** A layer-wise kernel's norm pass: float32 only, or with {@code mixed} for any storage formats. */
    CUfunction normsFunction(LayerwiseKernel kernel, boolean mixed) {
        return (mixed ? normsMixedFunctions : normsFunctions)[kernel.code()];
    }

    /** A matrix kernel's input pass (any storage formats). */
    CUfunction inputFunction(MatrixKernel kernel) {
        return inputFunctions[kernel.code()];
    }

    /** A matrix kernel's normalization. */
    CUfunction normalizeFunction(MatrixKernel kernel) {
        return normalizeFunctions[kernel.code()];
    }

    /** A matrix kernel's Newton-Schulz products. */
    CUfunction productFunction(MatrixKernel kernel) {
        return productFunctions[kernel.code()];
    }

    /** A matrix kernel's elementwise passes around fast mode's cuBLAS products. */
    CUfunction fastFunction(MatrixKernel kernel) {
        return fastFunctions[kernel.code()];
    }

    /** Any entry point of a loaded family. */
    CUfunction function(String family, String entryPoint) {
        CUmodule module = modules.get(family);
        if (module == null) throw new IllegalStateException("kernel family " + family + " is not in the kernel manifest");
        CUfunction function = new CUfunction();
        Driver.check(JCudaDriver.cuModuleGetFunction(function, module, entryPoint), "cuModuleGetFunction(" + entryPoint + ")");
        return function;
    }

    private static CUmodule load(String family, Properties manifest, String deviceDescription) {
        byte[] image = readResource(family + ".fatbin");
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
    public void close() {
        for (CUmodule module : modules.values()) {
            JCudaDriver.cuModuleUnload(module); // best effort: the context is released next
        }
        modules.clear();
        for (CUfunction[] table : tables) Arrays.fill(table, null);
    }
}
