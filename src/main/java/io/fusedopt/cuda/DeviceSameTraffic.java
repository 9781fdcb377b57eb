package io.fusedopt.cuda;

import io.fusedopt.Precision;
import io.fusedopt.internal.Conversions;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

/**
 * The benchmarks' roofline for one update on a device: the arrays an update step reads and writes
 * (the same element formats and element count), updated by {@code fusedopt_same_traffic}
 * (kernels/traffic.cu) with one add per written element instead of the algorithm's arithmetic.
 * Its time is what that traffic costs on this device; an update's time divided into it is how close
 * the update is to its own memory limit. The counterpart of the CPU benchmarks' same-traffic kernel.
 *
 * <p>Operands: the fp32 param, or with {@code bf16Master} an fp32 master read and written plus a
 * bf16 model copy written only; the grad (fp32, or bf16 with a master) read only; {@code states}
 * fp32 states read and written. Bytes per element are those of
 * {@link io.fusedopt.internal.UpdatePlan#bytesPerElement(Precision, Precision, Precision, boolean)}
 * with fp32 states. Work goes to the engine's stream (the legacy default stream).
 */
public final class DeviceSameTraffic implements AutoCloseable {
    /** Elements a thread takes at once (FO_TRAFFIC_WIDTH in kernels/traffic.cu). */
    private static final int WIDTH = 8;
    /** The values the operands start with: normal numbers, so that no add meets a subnormal. */
    static final float INITIAL = 1f;
    static final float GRAD = 1e-3f;

    private final CudaEngine engine;
    private final long elements;
    private final int states;
    private final boolean bf16Master;
    private final long primary;
    private final long grad;
    private final long param16;
    private final long[] state = new long[3];

    /**
     * Allocates the operands on device {@code deviceOrdinal} and fills them.
     *
     * @throws IllegalArgumentException when elements is below 1 or states is not 0 to 3
     */
    public DeviceSameTraffic(int deviceOrdinal, long elements, int states, boolean bf16Master) {
        if (elements < 1) throw new IllegalArgumentException("elements must be at least 1, got " + elements);
        if (states < 0 || states > 3) throw new IllegalArgumentException("an update has 0 to 3 state arrays, got " + states);
        this.elements = elements;
        this.states = states;
        this.bf16Master = bf16Master;
        this.engine = new CudaEngine(deviceOrdinal);
        long[] allocated = new long[6];
        try {
            engine.makeCurrent();
            allocated[0] = Driver.allocate(4L * elements);
            allocated[1] = Driver.allocate((bf16Master ? 2L : 4L) * elements);
            if (bf16Master) allocated[2] = Driver.allocate(2L * elements);
            for (int j = 0; j < states; j++) allocated[3 + j] = Driver.allocate(4L * elements);
            fill32(allocated[0], INITIAL);
            if (bf16Master) {
                fill16(allocated[1], Conversions.floatToBf16(GRAD));
                fill16(allocated[2], Conversions.floatToBf16(INITIAL));
            } else {
                fill32(allocated[1], GRAD);
            }
            for (int j = 0; j < states; j++) fill32(allocated[3 + j], INITIAL);
            engine.synchronize();
        } catch (RuntimeException e) {
            for (long address : allocated) if (address != 0) engine.free(address);
            engine.close();
            throw e;
        }
        primary = allocated[0];
        grad = allocated[1];
        param16 = allocated[2];
        System.arraycopy(allocated, 3, state, 0, 3);
    }

    private void fill32(long address, float value) {
        Driver.check(JCudaDriver.cuMemsetD32Async(Driver.pointerAt(address), Float.floatToRawIntBits(value), elements,
                engine.stream()), "cuMemsetD32Async");
    }

    private void fill16(long address, short bits) {
        Driver.check(JCudaDriver.cuMemsetD16Async(Driver.pointerAt(address), bits, elements, engine.stream()),
                "cuMemsetD16Async");
    }

    /** The device this runs on, in one line. */
    public String deviceDescription() {
        return engine.description();
    }

    /** Queues one pass over every element. */
    public void run() {
        Pointer params = Pointer.to(Pointer.to(Driver.pointerAt(primary)), Pointer.to(Driver.pointerAt(grad)),
                Pointer.to(new int[] {(bf16Master ? Precision.BF16 : Precision.FP32).code()}),
                Pointer.to(Driver.pointerAt(param16)), Pointer.to(Driver.pointerAt(state[0])),
                Pointer.to(Driver.pointerAt(state[1])), Pointer.to(Driver.pointerAt(state[2])),
                Pointer.to(new long[] {elements}));
        engine.launch(engine.modules().function("traffic", "fusedopt_same_traffic"), (elements + WIDTH - 1) / WIDTH, params,
                "cuLaunchKernel(fusedopt_same_traffic, " + elements + " elements)");
    }

    public void synchronize() {
        engine.synchronize();
    }

    /** Bytes one pass moves: read plus written. */
    public long bytesMoved() {
        long read = 4 + (bf16Master ? 2 : 4) + 4L * states;
        long written = 4 + (bf16Master ? 2 : 0) + 4L * states;
        return (read + written) * elements;
    }

    /** The fp32 param (or master) as it is now; waits for the stream. */
    public float[] primaryValues() {
        float[] values = new float[Math.toIntExact(elements)];
        copyOut(Pointer.to(values), primary, 4L * elements);
        return values;
    }

    /** State {@code j} as it is now; waits for the stream. */
    public float[] stateValues(int j) {
        if (j < 0 || j >= states) throw new IllegalArgumentException("state " + j + " does not exist; states: " + states);
        float[] values = new float[Math.toIntExact(elements)];
        copyOut(Pointer.to(values), state[j], 4L * elements);
        return values;
    }

    /** The bf16 model copy's bits as they are now; waits for the stream. */
    public short[] param16Bits() {
        if (!bf16Master) throw new IllegalStateException("no bf16 model copy: this traffic is fp32");
        short[] bits = new short[Math.toIntExact(elements)];
        copyOut(Pointer.to(bits), param16, 2L * elements);
        return bits;
    }

    private void copyOut(Pointer host, long address, long bytes) {
        engine.synchronize();
        Driver.check(JCudaDriver.cuMemcpyDtoH(host, Driver.pointerAt(address), bytes), "cuMemcpyDtoH");
    }

    @Override
    public void close() {
        engine.free(primary);
        engine.free(grad);
        if (param16 != 0) engine.free(param16);
        for (long address : state) if (address != 0) engine.free(address);
        engine.close();
    }
}
