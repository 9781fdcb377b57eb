package io.fusedopt.internal;

/** The engine a buffer belongs to: tells whether it is still open and hears when a buffer closes. */
public interface BufferOwner {
    boolean isClosed();

    /** Called once when an owned or wrapped buffer of this owner closes. */
    void onBufferClosed(AbstractTensorBuffer buffer);
}
