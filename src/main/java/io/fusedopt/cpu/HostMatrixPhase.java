package io.fusedopt.cpu;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.NewtonSchulz;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.StochasticRounding;
import io.fusedopt.internal.TensorNorms;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.WholeTensorIo;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * The tensors of the matrix kernels ({@link MatrixKernel}: Muon) in a host step program, tensor by
 * tensor in the device's order: the matrix input, its sum of squares in the norms' order, the
 * Newton-Schulz iteration (whose products are the program's: plain loops on the reference backend,
 * SIMD on all cores on CPU_FAST), then the update pass (the kernel's vector form on CPU_FAST). Each tensor is read into float32 arrays
 * (the master instead of a 16-bit param, the gradient prepared) and written back in its formats (the
 * master, then the param rounded to nearest or stochastically, the states), as the mixed kernels do.
 * The arrays are sized for the largest tensor once and reused; a tensor must have fewer than 2^31
 * elements on the host.
 */
final class HostMatrixPhase {
    /** Kernel operands: param, grad, the kernel's slots (the last: O). */
    private static final int PARAM = 0, GRAD = 1, FIRST_SLOT = 2;

    private final MatrixKernel[] kernels;
    private final TensorOperands[] tensors;
    private final NewtonSchulz.Products products;
    /** Whether the update pass runs the kernel's vector form (CPU_FAST with the Vector API); its class loads only then. */
    private final boolean vector;
    private VectorOperand[] vectorOperands;
    private final NewtonSchulz.Workspace workspace = new NewtonSchulz.Workspace();
    private final StochasticRounding rounding = new StochasticRounding();
    private final float[] scalars = new float[StepScalars.SCALAR_STRIDE];
    private final float[][] arrays;
    private final FloatBuffer[] operands;
    private final short[] roundedBits;
    private final double[] lanes = new double[GradientStatistics.LANES];
    private final double[] partials;

    private HostMatrixPhase(List<MatrixKernel> kernels, List<TensorOperands> tensors, NewtonSchulz.Products products, boolean vector) {
        this.kernels = kernels.toArray(new MatrixKernel[0]);
        this.tensors = tensors.toArray(new TensorOperands[0]);
        this.products = products;
        this.vector = vector;
        int longest = 0;
        int operandCount = FIRST_SLOT;
        for (int t = 0; t < this.tensors.length; t++) {
            long length = this.tensors[t].param().length();
            if (length > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException(this.kernels[t] + " on the CPU takes tensors of fewer than 2^31 elements, got "
                        + length + " (shape " + java.util.Arrays.toString(this.tensors[t].shape()) + ")");
            }
            longest = Math.max(longest, (int) length);
            operandCount = Math.max(operandCount, FIRST_SLOT + this.kernels[t].stateSlots());
        }
        arrays = new float[operandCount][longest];
        operands = new FloatBuffer[operandCount];
        for (int j = 0; j < operandCount; j++) operands[j] = FloatBuffer.wrap(arrays[j]);
        roundedBits = new short[longest];
        partials = new double[(int) SegmentTable.chunksOf(longest)];
    }

    /**
     * The phase over the matrix kernels' tensors among {@code batches}, or null where there is none;
     * {@code vector}: the update pass runs the kernels' vector form (the Vector API module is present).
     */
    static HostMatrixPhase of(List<KernelBatch> batches, NewtonSchulz.Products products, boolean vector) {
        List<MatrixKernel> kernels = new ArrayList<>();
        List<TensorOperands> tensors = new ArrayList<>();
        for (KernelBatch batch : batches) {
            if (!(batch.kernel() instanceof MatrixKernel kernel)) continue;
            for (TensorOperands t : batch.tensors()) {
                kernels.add(kernel);
                tensors.add(t);
            }
        }
        return tensors.isEmpty() ? null : new HostMatrixPhase(kernels, tensors, products, vector);
    }

    /** Updates every matrix tensor with the step's scalars and flags in {@code groups} (after the finalize computation; not for a skipped step). */
    void run(GroupTable groups, StepControl control) {
        for (int t = 0; t < tensors.length; t++) update(kernels[t], tensors[t], groups, control);
    }

    private void update(MatrixKernel kernel, TensorOperands tensor, GroupTable groups, StepControl control) {
        int n = (int) tensor.param().length();
        if (n == 0) return;
        int group = tensor.group();
        System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
        int flags = groups.flags()[group];
        WholeTensorIo.readParamAndGrad(tensor, arrays[PARAM], arrays[GRAD], n, flags, control);
        int orthogonal = FIRST_SLOT + kernel.orthogonalSlot();
        for (int j = 0; j < kernel.orthogonalSlot(); j++) {
            AbstractTensorBuffer slot = tensor.slots()[j];
            if (slot != null) slot.copyTo(0, arrays[FIRST_SLOT + j], 0, n);
        }
        float[] matrix = arrays[orthogonal]; // the input U, then (orthogonalize reads it before writing) O
        kernel.matrixInput(operands, 0, 0, n, scalars, flags, matrix);
        double sumOfSquares = TensorNorms.sumOfSquares(matrix, n, lanes, partials);
        long[] shape = tensor.shape();
        kernel.tensorScalars(shape[0], shape[1], scalars, flags);
        NewtonSchulz.orthogonalize(matrix, (int) shape[0], (int) shape[1], sumOfSquares, scalars[MatrixKernel.NS_A],
                scalars[MatrixKernel.NS_B], scalars[MatrixKernel.NS_C], scalars[MatrixKernel.NS_EPS],
                (int) scalars[MatrixKernel.NS_STEPS], products, workspace, matrix);
        if (vector) {
            if (vectorOperands == null) {
                vectorOperands = new VectorOperand[arrays.length];
                for (int j = 0; j < arrays.length; j++) vectorOperands[j] = VectorOperand.ofArray(arrays[j], 0);
            }
            VectorKernels.run(kernel, vectorOperands, operands, 0, n, scalars, flags);
        } else {
            kernel.reference(operands, 0, 0, n, scalars, flags);
        }
        WholeTensorIo.storeParam(tensor, arrays[PARAM], n, flags, control, rounding, roundedBits);
        for (int j = 0; j < kernel.orthogonalSlot(); j++) {
            AbstractTensorBuffer slot = tensor.slots()[j];
            if (slot != null) slot.copyFrom(arrays[FIRST_SLOT + j], 0, 0, n);
        }
    }
}
