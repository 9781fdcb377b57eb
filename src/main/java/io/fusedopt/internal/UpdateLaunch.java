package io.fusedopt.internal;

/**
 * One tensor's update, prepared once at registration so that a step allocates nothing: it reads
 * the group's scalar array and flag cell, which the optimizer refreshes before each step.
 */
public interface UpdateLaunch {
    void run();
}
