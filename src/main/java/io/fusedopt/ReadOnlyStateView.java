package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;

/** What {@link Parameter#state} hands out: reads only, serialized with steps, never closes the state. */
final class ReadOnlyStateView implements TensorBuffer {
    private final DeviceOptimizer optimizer;
    private final AbstractTensorBuffer state;

    ReadOnlyStateView(DeviceOptimizer optimizer, AbstractTensorBuffer state) {
        this.optimizer = optimizer;
        this.state = state;
    }

    @Override public long length() { return state.length(); }
    @Override public Precision precision() { return state.precision(); }
    @Override public boolean isDevice() { return state.isDevice(); }
    @Override public boolean isOwnedByLibrary() { return true; }
    @Override public boolean isClosed() { return state.isClosed(); }

    @Override
    public void copyFrom(float[] source) {
        throw readOnly();
    }

    @Override
    public void copyFrom(float[] source, int sourceOffset, long offset, int count) {
        throw readOnly();
    }

    @Override
    public void copyTo(float[] destination) {
        synchronized (optimizer) {
            state.copyTo(destination);
        }
    }

    @Override
    public void copyTo(long offset, float[] destination, int destinationOffset, int count) {
        synchronized (optimizer) {
            state.copyTo(offset, destination, destinationOffset, count);
        }
    }

    /** The state belongs to the optimizer: closing the view does nothing. */
    @Override
    public void close() {}

    private static UnsupportedOperationException readOnly() {
        return new UnsupportedOperationException("optimizer state is read-only; it changes only through step()");
    }
}
