package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.BackendUnavailableException;
import io.fusedopt.CudaException;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Sgd;
import io.fusedopt.cuda.CudaProbe;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * The backend a command will run on, decided once before its run ({@link Backend#AUTO} resolved;
 * {@code reason} is {@link DeviceOptimizer#backendReason()}, which the command prints on its own
 * line about the device, {@link #howChosen()}), and how much memory that backend can give tensors,
 * so that a size it cannot hold is refused before any work with the limit in the message.
 */
record BackendChoice(Backend backend, String device, String reason, MemoryLimit memory) {
    /**
     * What a backend can hold: {@code bytes} in all (the Java heap for {@link Backend#CPU}, direct
     * memory for {@link Backend#CPU_FAST}, free device memory for {@link Backend#CUDA}), described
     * by {@code source}, and at most {@code elementsPerTensor} elements in one tensor.
     */
    record MemoryLimit(long bytes, String source, long elementsPerTensor) {
        /** The CPU reference keeps a tensor in one Java array, so it is limited by the longest array. */
        static final long CPU_ELEMENTS_PER_TENSOR = Integer.MAX_VALUE - 8;

        /** The most elements of {@code tensors} equal tensors of {@code bytesPerElement} each that fit. */
        long maxElements(int tensors, int bytesPerElement) {
            return Math.min(elementsPerTensor, bytes / ((long) tensors * bytesPerElement));
        }

        /** "the Java heap (-Xmx) holds 6320816128 bytes", and the tensor limit where there is one. */
        String describe() {
            return source + " holds " + bytes + " bytes"
                    + (elementsPerTensor < Long.MAX_VALUE ? ", one tensor at most " + elementsPerTensor + " elements" : "");
        }
    }

    /**
     * Opens {@code requested} once (closing it again) and reports what it is.
     *
     * @throws CommandFailure when {@link Backend#CUDA} is requested and no usable GPU exists, or
     *     opening it or querying its memory fails
     */
    static BackendChoice of(Backend requested) {
        CudaProbe.Result probe = CudaProbe.result();
        if (requested == Backend.CUDA && !probe.available()) {
            throw new CommandFailure("--backend CUDA: no usable GPU: " + probe.reason()
                    + "; use --backend AUTO, CPU_FAST or CPU");
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(requested, Sgd.builder().build())) {
            Backend backend = opt.backend();
            MemoryLimit memory = switch (backend) {
                case CPU -> new MemoryLimit(Runtime.getRuntime().maxMemory(), "the Java heap (-Xmx)",
                        MemoryLimit.CPU_ELEMENTS_PER_TENSOR);
                // The fast backend's blocks are arrays too, but a tensor may span many of them.
                case CPU_FAST -> new MemoryLimit(Runtime.getRuntime().maxMemory(), "the Java heap (-Xmx)", Long.MAX_VALUE);
                default -> new MemoryLimit(freeDeviceMemory(), "free memory of " + opt.deviceDescription(), Long.MAX_VALUE);
            };
            return new BackendChoice(backend, backend + ": " + opt.deviceDescription(), opt.backendReason(), memory);
        } catch (BackendUnavailableException | CudaException e) {
            throw new CommandFailure("--backend " + requested + ": " + e.getMessage(), e);
        }
    }

    /**
     * What a command appends to its line about the device: nothing for a backend it was told to
     * use, and for {@link Backend#AUTO} which backend AUTO took and why, so that the choice is said
     * once, on that line (the library's log record of it is not shown, {@link LibraryLog}).
     */
    String howChosen() {
        if (!reason.startsWith(AUTO_PREFIX)) return "";
        return backend == Backend.CUDA ? " (AUTO chose CUDA: a usable GPU opened)"
                : " (AUTO chose " + backend + ": " + reason.substring(AUTO_PREFIX.length()) + ")";
    }

    /** How {@link DeviceOptimizer#backendReason()} begins when AUTO chose. */
    private static final String AUTO_PREFIX = "AUTO: ";

    /**
     * Free memory of the device whose context is current; the CUDA optimizer just opened made its
     * primary context current on this thread.
     */
    private static long freeDeviceMemory() {
        long[] free = new long[1], total = new long[1];
        int result = JCudaDriver.cuMemGetInfo(free, total);
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CommandFailure("cannot read the GPU's free memory: cuMemGetInfo failed: " + CUresult.stringFor(result));
        }
        return free[0];
    }

}
