package org.peft4j.examples;

import org.bytedeco.javacpp.Pointer;

/**
 * Peak memory while a method trains, sampled after every step: JVM heap in use
 * ({@code totalMemory - freeMemory}) and the resident set of the whole process
 * ({@link Pointer#physicalBytes()}, which includes ND4J's native buffers and workspaces; JavaCPP's
 * own counter {@code Pointer.totalBytes()} stays at 0 here because ND4J allocates natively).
 * Heap figures include garbage not yet collected, so they are an upper bound; the resident set
 * is the process as the operating system sees it, all methods' leftovers included, so compare it
 * between methods as an upper bound too.
 *
 * <p>Thread-safety: not thread-safe; one probe per training run.
 */
final class MemoryProbe {

    private long peakHeap;
    private long peakOffHeap;

    /** Collects garbage so earlier methods' freed arrays do not count, then starts from zero. */
    static MemoryProbe start() {
        System.gc();
        System.gc();
        MemoryProbe p = new MemoryProbe();
        p.sample();
        return p;
    }

    /** Records the current figures. */
    void sample() {
        Runtime rt = Runtime.getRuntime();
        peakHeap = Math.max(peakHeap, rt.totalMemory() - rt.freeMemory());
        peakOffHeap = Math.max(peakOffHeap, Pointer.physicalBytes());
    }

    long peakHeap() {
        return peakHeap;
    }

    long peakOffHeap() {
        return peakOffHeap;
    }
}
