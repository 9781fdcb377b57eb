package io.fusedopt.cpu;

import java.util.Arrays;

/** A growable list of ints, for building a step program's flat tables without boxing one Integer per chunk. */
final class IntList {
    private int[] values = new int[16];
    private int size;

    void add(int value) {
        if (size == values.length) values = Arrays.copyOf(values, 2 * size);
        values[size++] = value;
    }

    int size() {
        return size;
    }

    int[] toArray() {
        return Arrays.copyOf(values, size);
    }
}
