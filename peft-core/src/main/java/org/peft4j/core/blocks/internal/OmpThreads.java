package org.peft4j.core.blocks.internal;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;
import java.util.Map;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Keeps ND4J's own (non-BLAS) operations on one OpenMP thread for the threads that run peft4j layers,
 * unless the user chose otherwise.
 *
 * <p>Why: nd4j-native runs each element-wise, broadcast, reduction and custom op as an OpenMP
 * parallel region (libgomp, bundled with it), and a training step issues thousands of them, most on
 * a few hundred thousand floats. With libgomp's default wait policy an idle OpenMP thread spins for
 * a while (about 300,000 pause instructions) after every region, and the thread that opened the
 * region spins at its closing barrier until every team member has arrived. On a machine with as
 * many cores as OpenMP threads, the spinning worker occupies the core that OpenBLAS's own worker
 * (a separate pthread pool), the JIT, the garbage collector and our Java kernels need; on a busy
 * machine a descheduled team member makes the other spin for a whole time slice. Measured on 2
 * cores (encoder of {@code EncoderStepBench}, LoRA step, machine shared with other builds): the
 * default environment spent 70% of the step's CPU samples inside libgomp's spin loops, and a step
 * took 10–30× as long as with {@code OMP_WAIT_POLICY=PASSIVE}; with one OpenMP thread for ND4J's
 * ops the worker thread never starts and the step is as fast as the passive policy. BLAS products,
 * where the flops are, keep all of OpenBLAS's threads: only ND4J's own loops become serial.
 *
 * <p>The environment variable would be the clean fix, but libgomp reads {@code OMP_WAIT_POLICY} and
 * {@code GOMP_SPINCOUNT} once, when it is loaded, which happens when ND4J initialises, before any
 * peft4j code runs, and Java cannot change its own process environment. What can be changed later
 * is the OpenMP thread count, and only per calling thread ({@code omp_set_num_threads} sets the
 * calling thread's {@code nthreads-var}); so {@link #apply()} is called at the start of every
 * peft4j layer's forward and backward pass, and takes effect on that thread for every later ND4J
 * op, DL4J's included (the updater, stock layers). Other threads are untouched.
 *
 * <p>Nothing is changed when the user has configured OpenMP ({@code OMP_NUM_THREADS} or
 * {@code OMP_WAIT_POLICY} is set in the environment), when the backend is not nd4j-native, or when
 * the system property {@value #PROPERTY} is {@code keep}. The property may also give the thread
 * count (a positive integer); its default is {@code 1}.
 *
 * <p>Thread-safety: immutable after class initialisation; {@link #apply()} affects the calling
 * thread only.
 */
public final class OmpThreads {
    /** System property: {@code keep}, or the OpenMP thread count for ND4J's ops on peft4j's threads. */
    public static final String PROPERTY = "peft4j.nd4jOmpThreads";
    static final String CPU_BACKEND = "org.nd4j.linalg.cpu.nativecpu.CpuBackend";

    private static final String INVALID;
    private static final int THREADS;
    private static final MethodHandle SET;

    static {
        int n;
        String invalid = null;
        try {
            n = threads(System.getProperty(PROPERTY, "1"), System.getenv());
        } catch (IllegalArgumentException e) {
            n = 0;
            invalid = e.getMessage();
        }
        INVALID = invalid;
        THREADS = n;
        SET = n > 0 ? setter() : null;
    }

    private OmpThreads() {
    }

    /**
     * The thread count to set, or 0 to leave OpenMP alone.
     *
     * @throws IllegalArgumentException if the property is neither {@code keep} nor a positive integer
     */
    static int threads(String property, Map<String, String> env) {
        String p = property.trim().toLowerCase(Locale.ROOT);
        int n;
        if (p.equals("keep")) {
            n = 0;
        } else {
            try {
                n = Integer.parseInt(p);
            } catch (NumberFormatException e) {
                n = -1;
            }
            if (n <= 0) {
                throw new IllegalArgumentException("system property " + PROPERTY + " must be 'keep' or a positive "
                        + "thread count, got '" + property + "'");
            }
        }
        if (env.containsKey("OMP_NUM_THREADS") || env.containsKey("OMP_WAIT_POLICY")) {
            return 0;
        }
        return n;
    }

    /** {@code setOmpNumThreads(int)} of ND4J's native ops bound to their instance, or null off nd4j-native. */
    static MethodHandle setter() {
        if (!CPU_BACKEND.equals(Nd4j.getBackend().getClass().getName())) {
            return null;
        }
        try {
            ClassLoader loader = OmpThreads.class.getClassLoader();
            Class<?> holder = Class.forName("org.nd4j.nativeblas.NativeOpsHolder", true, loader);
            Class<?> ops = Class.forName("org.nd4j.nativeblas.NativeOps", true, loader);
            Object instance = holder.getMethod("getInstance").invoke(null);
            Object nativeOps = holder.getMethod("getDeviceNativeOps").invoke(instance);
            MethodHandle set = MethodHandles.publicLookup().findVirtual(ops, "setOmpNumThreads",
                    MethodType.methodType(void.class, int.class));
            return set.bindTo(nativeOps);
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            return null;
        }
    }

    /** Whether {@link #apply()} changes anything in this JVM. */
    public static boolean active() {
        return SET != null;
    }

    /**
     * Sets the calling thread's OpenMP thread count for ND4J's ops (see the class comment); cheap.
     *
     * @throws IllegalArgumentException if the system property {@value #PROPERTY} is neither
     *     {@code keep} nor a positive integer
     */
    public static void apply() {
        if (INVALID != null) {
            throw new IllegalArgumentException(INVALID);
        }
        if (SET == null) {
            return;
        }
        try {
            SET.invokeExact(THREADS);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("setOmpNumThreads failed", t);
        }
    }
}
