package org.peft4j.core.internal;

import java.nio.FloatBuffer;
import java.util.Locale;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.updater.UpdaterBlock;
import org.deeplearning4j.nn.updater.graph.ComputationGraphUpdater;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.AdamUpdater;
import org.nd4j.linalg.learning.config.Adam;

/**
 * DL4J's {@link AdamUpdater} with its float32 update computed by a Java loop that HotSpot
 * vectorizes, installed by {@link #install} into the updater blocks of a graph whose parameters
 * train with DL4J's {@link Adam}.
 *
 * <p>Why hand-written: on nd4j-native 1.0.0-M2.1 the {@code adam_updater} op runs its loop with a
 * scalar square root and divide, about 5.2–5.7 ns a parameter on one core (22.7 M float parameters:
 * 118–130 ms, a fifth of a one-thread MiniLM-sized full fine-tuning step). This loop, a tile of the
 * gradient and of both moments at a time copied to the heap, with {@code (float) Math.sqrt} and the
 * divide vectorized by C2, takes 1.75 ns a parameter (40 ms), close to the memory traffic it needs.
 *
 * <p>The arithmetic is libnd4j's, in the same order and in float32 (the bias-corrected step size
 * {@code lr · √(1 − β₂ᵗ⁺¹) / (1 − β₁ᵗ⁺¹)}, with DL4J's replacement by ε when it is not finite or
 * zero; {@code m = β₁·m + (1 − β₁)·g}, {@code v = β₂·v + (1 − β₂)·g²},
 * {@code g = m·α / (√v + ε)}). The moments are the views DL4J's updater was given (first half of the
 * block's state {@code m}, second half {@code v}), the configuration is the layer's own
 * {@link Adam} object, read at every step: the state layout, checkpoints, {@code ModelSerializer},
 * learning-rate schedules and {@code setLearningRate} behave as with DL4J's updater, and a graph
 * trained here continues in plain DL4J. A step whose gradient or moments are not float32 and
 * contiguous in host memory runs DL4J's op.
 *
 * <p>Switch: system property {@value #PROPERTY} ({@code true} by default); {@code false}, or a
 * backend other than ND4J's CPU backend, leaves DL4J's updater in place.
 *
 * <p>Thread-safety: an instance belongs to one updater block of one graph and is called by the
 * thread training that graph, as DL4J's updater is; it keeps its tile buffers.
 */
public final class FastAdamUpdater extends AdamUpdater {
    /** System property: {@code false} keeps DL4J's Adam updater (default {@code true}). */
    public static final String PROPERTY = "peft4j.fastAdam";
    private static final String CPU_BACKEND = "org.nd4j.linalg.cpu.nativecpu.CpuBackend";
    private static final boolean ENABLED = enabled(System.getProperty(PROPERTY, "true"));
    /** Elements per tile: three float tiles of 8 KiB stay in the first-level cache. */
    static final int TILE = 2048;

    private float[] g;
    private float[] m;
    private float[] v;

    /** An updater for {@code config} over the moments {@code like} holds (its views, not copies). */
    FastAdamUpdater(Adam config, AdamUpdater like) {
        super(config);
        setM(like.getM());
        setV(like.getV());
        setGradientReshapeOrder(like.getGradientReshapeOrder());
    }

    private static boolean enabled(String property) {
        String p = property.trim().toLowerCase(Locale.ROOT);
        if (!p.equals("true") && !p.equals("false")) {
            throw new IllegalArgumentException("system property " + PROPERTY + " must be true or false, got '"
                    + property + "'");
        }
        return p.equals("true") && CPU_BACKEND.equals(Nd4j.getBackend().getClass().getName());
    }

    /** Whether {@link #install} replaces updaters in this JVM (switch on, CPU backend). */
    public static boolean enabled() {
        return ENABLED;
    }

    /**
     * Replaces, in {@code graph}'s updater, every block's DL4J {@link AdamUpdater} whose
     * configuration is exactly {@link Adam} and whose moments are float32 host views by a
     * {@code FastAdamUpdater} over the same configuration object and moments. Creates the graph's
     * updater (as its first {@code fit} would) only when some trainable float32 parameter uses
     * {@link Adam}; leaves every other updater, and other graphs, as they are. Returns how many
     * blocks now use this updater.
     */
    public static int install(ComputationGraph graph) {
        if (!ENABLED || graph.getUpdater(false) == null && !trainsFloatAdam(graph)) {
            return 0;
        }
        ComputationGraphUpdater updater = graph.getUpdater(true);
        int installed = 0;
        for (UpdaterBlock block : updater.getUpdaterBlocks()) {
            if (block.getGradientUpdater() instanceof FastAdamUpdater) {
                installed++;
            } else if (block.getGradientUpdater().getClass() == AdamUpdater.class) {
                AdamUpdater dl4j = (AdamUpdater) block.getGradientUpdater();
                if (dl4j.getConfig().getClass() == Adam.class && dl4j.getM() != null
                        && hostFloats(dl4j.getM()) && hostFloats(dl4j.getV())) {
                    block.setGradientUpdater(new FastAdamUpdater(dl4j.getConfig(), dl4j));
                    installed++;
                }
            }
        }
        return installed;
    }

    private static boolean trainsFloatAdam(ComputationGraph graph) {
        if (graph.params() == null || graph.params().dataType() != DataType.FLOAT) {
            return false;
        }
        for (Layer l : graph.getLayers()) {
            if (l.numParams() == 0) {
                continue;
            }
            for (String p : l.paramTable().keySet()) {
                if (l.conf().getLayer().getUpdaterByParam(p).getClass() == Adam.class) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Float32 elements filling one run of an int-indexed host buffer, in the array's order: the
     * strides of its dimensions longer than one are the dense ones (a row of a state matrix
     * {@code [1, n]} keeps the matrix's row stride, which no element uses).
     */
    private static boolean hostFloats(INDArray a) {
        if (a.dataType() != DataType.FLOAT || a.length() == 0) {
            return false;
        }
        int rank = a.rank();
        long dense = 1;
        for (int k = 0; k < rank; k++) {
            int d = a.ordering() == 'c' ? rank - 1 - k : k;
            if (a.size(d) > 1) {
                if (a.stride(d) != dense) {
                    return false;
                }
                dense *= a.size(d);
            }
        }
        return a.offset() >= 0 && a.offset() + a.length() <= a.data().asNioFloat().capacity();
    }

    /** Whether element {@code i} of {@code a} and of {@code b} sit at the same place in their buffer runs. */
    private static boolean sameElementOrder(INDArray a, INDArray b) {
        return a.length() == b.length() && (a.isVectorOrScalar() && b.isVectorOrScalar()
                || a.ordering() == b.ordering() && java.util.Arrays.equals(a.shape(), b.shape()));
    }

    /** Whether a step on {@code gradient} runs this loop (else DL4J's op). */
    boolean applies(INDArray gradient) {
        INDArray mv = getM();
        INDArray vv = getV();
        return mv != null && vv != null && hostFloats(gradient) && hostFloats(mv) && hostFloats(vv)
                && sameElementOrder(gradient, mv) && sameElementOrder(gradient, vv);
    }

    @Override
    public void applyUpdater(INDArray gradient, int iteration, int epoch) {
        if (!applies(gradient)) {
            super.applyUpdater(gradient, iteration, epoch);
            return;
        }
        INDArray mv = getM();
        INDArray vv = getV();
        Adam c = getConfig();
        float beta1 = (float) c.getBeta1();
        float beta2 = (float) c.getBeta2();
        float epsilon = (float) c.getEpsilon();
        float alpha = stepSize((float) c.getLearningRate(iteration, epoch), beta1, beta2, epsilon, iteration);
        if (g == null) {
            g = new float[TILE];
            m = new float[TILE];
            v = new float[TILE];
        }
        update(gradient.data().asNioFloat(), (int) gradient.offset(), mv.data().asNioFloat(), (int) mv.offset(),
                vv.data().asNioFloat(), (int) vv.offset(), (int) gradient.length(), beta1, beta2, epsilon, alpha,
                g, m, v);
    }

    /**
     * libnd4j's bias-corrected step size, with its mix of float and double operations:
     * {@code lr · √(1 − β₂ᵗ⁺¹) / (1 − β₁ᵗ⁺¹)}, or {@code epsilon} when that is NaN, infinite or zero.
     */
    static float stepSize(float lr, float beta1, float beta2, float epsilon, int iteration) {
        float t = (float) iteration + 1f;
        float beta1T = (float) Math.pow(beta1, t);
        float beta2T = (float) Math.pow(beta2, t);
        float alpha = (float) ((lr * (float) Math.sqrt((float) (1.0 - beta2T))) / (1.0 - beta1T));
        return Float.isNaN(alpha) || Float.isInfinite(alpha) || alpha == 0f ? epsilon : alpha;
    }

    /**
     * One Adam step over {@code n} elements: gradient at {@code go} of {@code gb} (replaced by the
     * update), moments at {@code mo} of {@code mb} and {@code vo} of {@code vb}; {@code g, m, v} are
     * tile buffers of {@link #TILE} elements.
     */
    static void update(FloatBuffer gb, int go, FloatBuffer mb, int mo, FloatBuffer vb, int vo, int n, float beta1,
                       float beta2, float epsilon, float alpha, float[] g, float[] m, float[] v) {
        float c1 = 1 - beta1;
        float c2 = 1 - beta2;
        for (int s = 0; s < n; s += TILE) {
            int len = Math.min(TILE, n - s);
            gb.get(go + s, g, 0, len);
            mb.get(mo + s, m, 0, len);
            vb.get(vo + s, v, 0, len);
            for (int i = 0; i < len; i++) {
                float gi = g[i];
                float mi = beta1 * m[i] + gi * c1;
                float vi = beta2 * v[i] + gi * gi * c2;
                m[i] = mi;
                v[i] = vi;
                g[i] = (mi * alpha) / ((float) Math.sqrt(vi) + epsilon);
            }
            mb.put(mo + s, m, 0, len);
            vb.put(vo + s, v, 0, len);
            gb.put(go + s, g, 0, len);
        }
    }
}
