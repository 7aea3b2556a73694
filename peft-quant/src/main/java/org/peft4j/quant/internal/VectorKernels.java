package org.peft4j.quant.internal;

import java.util.Locale;

/**
 * Run-time choice between the scalar kernels and the Vector API kernels ({@link Gemv4bitVector},
 * {@link Dequant4bitVector}).
 *
 * <p>The Vector API is an incubator module: it is usable only when the JVM was started with
 * {@code --add-modules jdk.incubator.vector}, and how well it compiles depends on the JDK. We
 * measured the vector GEMV about 3× <em>slower</em> than the scalar kernel on Java 17 (its
 * shuffles are not intrinsified there) and about 4× faster on Java 25 (README, "Benchmarks").
 * So the system property {@code peft4j.vector} decides:
 * <ul>
 *   <li>{@code auto} (default): vectors when the module is present and the JVM is Java 25 or later
 *       (Java 18–24 were not measured);</li>
 *   <li>{@code true}: vectors whenever the module is present;</li>
 *   <li>{@code false}: always the scalar kernels.</li>
 * </ul>
 * Without the module this class never touches a {@code jdk.incubator.vector} type, so the library
 * runs unchanged. The choice is made once, when the class is initialised.
 *
 * <p>Thread-safety: immutable after class initialisation.
 */
public final class VectorKernels {
    /** The module that must be in the boot layer. */
    static final String MODULE = "jdk.incubator.vector";
    /** First Java feature release on which {@code auto} enables the vector kernels. */
    static final int AUTO_MIN_FEATURE = 25;

    private static final boolean ENABLED = decide(System.getProperty("peft4j.vector", "auto"),
            ModuleLayer.boot().findModule(MODULE).isPresent(), Runtime.version().feature());

    private VectorKernels() {
    }

    /** Whether the vector kernels are in use in this JVM. */
    public static boolean enabled() {
        return ENABLED;
    }

    /** The decision for a property value, module presence and Java feature version. */
    static boolean decide(String property, boolean modulePresent, int feature) {
        switch (property.trim().toLowerCase(Locale.ROOT)) {
            case "auto":
                return modulePresent && feature >= AUTO_MIN_FEATURE;
            case "true":
                return modulePresent;
            case "false":
                return false;
            default:
                throw new IllegalArgumentException("system property peft4j.vector must be auto, true or false, got '"
                        + property + "'");
        }
    }

    /**
     * {@code y = x · W} with the vector kernel if it is enabled and handles the shape; returns
     * false (and leaves {@code y} alone) otherwise, so the caller runs the scalar kernel.
     */
    static boolean gemv(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                        int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
        if (!ENABLED) {
            return false;
        }
        return Preferred.gemv(packed, scales, blockSize, pair, nIn, nOut, x, xOff, y, yOff);
    }

    /**
     * Dequantizes the longest run of whole blocks at the start of {@code [from, to)} with the
     * vector kernel if it is enabled, handles the block size and {@code from} is block-aligned;
     * returns the number of elements written (0 when it left everything to the scalar loop).
     */
    static int dequantize(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                          int from, int to, float[] out, int outOff) {
        if (!ENABLED) {
            return 0;
        }
        return Preferred.dequantize(packed, scales, blockSize, pair, from, to, out, outOff);
    }

    /** Holds the only references to the vector kernels, so they load only when the module is present. */
    private static final class Preferred {
        static boolean gemv(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                            int nIn, int nOut, float[] x, int xOff, float[] y, int yOff) {
            if (!Gemv4bitVector.supports(blockSize, nOut)) {
                return false;
            }
            Gemv4bitVector.gemv(packed, scales, blockSize, pair, nIn, nOut,
                    x, xOff, y, yOff);
            return true;
        }

        static int dequantize(byte[] packed, BlockScales scales, int blockSize, float[] pair,
                              int from, int to, float[] out, int outOff) {
            int blocks = (to - from) / blockSize;
            if (!Dequant4bitVector.supports(blockSize) || from % blockSize != 0 || blocks == 0) {
                return 0;
            }
            Dequant4bitVector.dequantize(packed, scales, blockSize, pair, from, blocks, out, outOff);
            return blocks * blockSize;
        }
    }
}
