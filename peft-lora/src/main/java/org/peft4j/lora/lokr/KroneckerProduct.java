package org.peft4j.lora.lokr;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.lora.lycoris.CpWeight;
import org.peft4j.lora.lycoris.LycorisAdapter;
import org.peft4j.lora.lycoris.LycorisInit;

/**
 * LoKr's update of one layer (LyCORIS, arXiv 2309.14859; Hugging Face PEFT {@code tuners/lokr/layer.py}),
 * in PEFT's orientation, {@code s = alpha / r}: the layer's sizes are split as
 * {@code out = outL·outK} and {@code in = inM·inN} ({@link #factorization}), and
 * <pre>
 *   ΔW = s · w1 ⊗ w2       w1 [outL, inM]        w2 [outK, inN, K]   (K kernel positions; 1 for dense)
 *   ΔW[i·outK + a, (j·inN + b)·K + p] = s · w1[i, j] · w2[a, b, p]
 * </pre>
 * {@code w1} is the factor {@code lokr_w1}, or {@code lokr_w1_a·lokr_w1_b} when
 * {@code decompose_both} and {@code r < max(outL, inM)/2}; {@code w2} is {@code lokr_w2}, or when
 * {@code r < max(outK, inN)/2} the product {@code lokr_w2_a [outK, r] · lokr_w2_b [r, inN·K]}, or
 * with {@code use_effective_conv2d} on a kernel of several positions the CP rebuild of
 * {@code lokr_t2}, {@code lokr_w2_a [r, outK]}, {@code lokr_w2_b [r, inN]} ({@link CpWeight}).
 *
 * <p>A 1D convolution with a full {@code lokr_w2 [outK, inN, k]} keeps PEFT's element order, which
 * differs there ({@code torch.kron} meets a 2-D {@code w1} and a 3-D {@code w2}):
 * {@code ΔW[a·outL + i, (b·inM + j)·k + t] = s·w1[i, j]·w2[a, b, t]}.
 *
 * <p>Backward, with {@code G = dL/dΔW} arranged as {@code [outL·inM, outK·inN·K]} (rows
 * {@code (i, j)}, columns {@code (a, b, p)}): {@code d vec(w1) = s·G·vec(w2)},
 * {@code d vec(w2) = s·Gᵀ·vec(w1)}; then through the products ({@code d w_a = d w·w_bᵀ},
 * {@code d w_b = w_aᵀ·d w}) or the CP rebuild.
 *
 * <p>Thread-safety: immutable.
 */
final class KroneckerProduct extends LycorisAdapter {
    private static final long serialVersionUID = 1L;

    static final String W1 = "lokrW1";
    static final String W1A = "lokrW1a";
    static final String W1B = "lokrW1b";
    static final String W2 = "lokrW2";
    static final String W2A = "lokrW2a";
    static final String W2B = "lokrW2b";
    static final String T2 = "lokrT2";

    @JsonProperty("outL")
    private long outL;
    @JsonProperty("outK")
    private long outK;
    @JsonProperty("inM")
    private long inM;
    @JsonProperty("inN")
    private long inN;
    @JsonProperty("fullW1")
    private boolean fullW1;
    @JsonProperty("fullW2")
    private boolean fullW2;
    @JsonProperty("effective")
    private boolean effective;
    @JsonProperty("init")
    private LoKrInit init;

    /** For JSON deserialization. */
    private KroneckerProduct() {
    }

    /** The update of {@code target} as {@code config} sets it up. */
    static KroneckerProduct of(LoKrConfig config, Target target) {
        long[] shape = targetShape(target);
        return new KroneckerProduct(config, config.rankFor(target.layerName()), config.alphaFor(target.layerName()), shape[0],
                shape[1], kernelOf(shape));
    }

    /**
     * The update of a layer with {@code out} outputs, {@code in} inputs and the given kernel (empty
     * for a dense layer), configured by {@code config} with rank {@code rank} and {@code alpha}.
     */
    KroneckerProduct(LoKrConfig config, int rank, double alpha, long out, long in, int[] kernel) {
        super(rank, alpha, config.rankDropout(), config.rankDropoutScale(), config.moduleDropout(), out, in, kernel);
        long[] inSplit = factorization(in, config.decomposeFactor());
        long[] outSplit = factorization(out, config.decomposeFactor());
        this.inM = inSplit[0];
        this.inN = inSplit[1];
        this.outL = outSplit[0];
        this.outK = outSplit[1];
        this.fullW1 = !(config.decomposeBoth() && rank < Math.max(outL, inM) / 2.0);
        this.fullW2 = !(rank < Math.max(outK, inN) / 2.0);
        this.effective = !fullW2 && config.useEffectiveConv2d() && kernel.length > 0 && kernelPositions() > 1;
        this.init = config.init();
    }

    /**
     * PEFT's (and LyCORIS's) split of {@code dimension} into {@code (m, n)}, {@code m·n = dimension}:
     * a positive {@code factor} that divides it gives {@code (factor, dimension / factor)} as is;
     * otherwise the divisor pair nearest the square root with {@code m ≤ factor} ({@code factor = −1}:
     * no limit), smaller first. Any other factor (0, below −1, or one that does not divide) without
     * a divisor up to it gives {@code (1, dimension)}.
     */
    static long[] factorization(long dimension, long factor) {
        if (factor > 0 && dimension % factor == 0) {
            return new long[] {factor, dimension / factor};
        }
        long limit = factor == -1 ? dimension : factor;
        long m = 1;
        long n = dimension;
        while (m < n) {
            long next = m + 1;
            while (dimension % next != 0) {
                next++;
            }
            if (next > limit) {
                break;
            }
            m = next;
            n = dimension / next;
        }
        return m <= n ? new long[] {m, n} : new long[] {n, m};
    }

    @Override
    public LycorisAdapter adopt(PeftConfig config, String layerName) {
        if (config instanceof LoKrConfig c) {
            KroneckerProduct other = new KroneckerProduct(c, c.rankFor(layerName), c.alphaFor(layerName), outFeatures(), inFeatures(),
                    kernel());
            if (sameLayout(other)) {
                return other;
            }
        }
        throw new IllegalArgumentException("a LoKr layer with " + this + " cannot take the settings of " + config);
    }

    /** {@code [outL, outK, inM, inN]}. */
    long[] split() {
        return new long[] {outL, outK, inM, inN};
    }

    /** Whether {@code w1} is one factor ({@code lokr_w1}) rather than a product. */
    boolean fullW1() {
        return fullW1;
    }

    /** Whether {@code w2} is one factor ({@code lokr_w2}) rather than a product or CP rebuild. */
    boolean fullW2() {
        return fullW2;
    }

    /** Whether {@code w2} has the effective convolution form ({@code lokr_t2}). */
    boolean effective() {
        return effective;
    }

    /** A 1D convolution with a full {@code lokr_w2}: PEFT's other element order. */
    private boolean permuted() {
        return fullW2 && kernel().length == 1;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        long r = rank();
        if (fullW1) {
            m.put(W1, new long[] {outL, inM});
        } else {
            m.put(W1A, new long[] {outL, r});
            m.put(W1B, new long[] {r, inM});
        }
        int[] k = kernel();
        if (fullW2) {
            long[] s = new long[2 + k.length];
            s[0] = outK;
            s[1] = inN;
            for (int i = 0; i < k.length; i++) {
                s[2 + i] = k[i];
            }
            m.put(W2, s);
        } else if (effective) {
            m.put(T2, k.length == 2 ? new long[] {r, r, k[0], k[1]} : new long[] {r, r, k[0], 1});
            m.put(W2A, new long[] {r, outK});
            m.put(W2B, new long[] {r, inN});
        } else {
            m.put(W2A, new long[] {outK, r});
            m.put(W2B, new long[] {r, inN * kernelPositions()});
        }
        return m;
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (!paramShapes().containsKey(key)) {
            throw new IllegalArgumentException("unknown LoKr parameter \"" + key + "\"");
        }
        boolean zero = switch (init) {
            case ZERO_W1 -> W1.equals(key) || W1A.equals(key);
            case ZERO_W2 -> W2.equals(key) || W2B.equals(key);
            case RANDOM -> false;
        };
        if (zero) {
            view.assign(0);
        } else {
            LycorisInit.kaimingUniform(view);
        }
    }

    @Override
    public List<FrozenBaseLayer.SavedTensor> savedTensors() {
        List<FrozenBaseLayer.SavedTensor> l = new ArrayList<>();
        for (String key : paramShapes().keySet()) {
            l.add(new FrozenBaseLayer.SavedTensor(key, fileSuffix(key), false));
        }
        return l;
    }

    /** PEFT's name of a factor: {@code lokrW1 → lokr_w1}, {@code lokrW2a → lokr_w2_a}, {@code lokrT2 → lokr_t2}. */
    static String fileSuffix(String key) {
        String rest = key.substring("lokr".length()).toLowerCase(Locale.ROOT);
        return "lokr_" + (rest.length() == 3 ? rest.substring(0, 2) + "_" + rest.substring(2) : rest);
    }

    /** {@code w1 [outL, inM]} ('c'). */
    private INDArray w1(Map<String, INDArray> p) {
        return fullW1 ? p.get(W1).dup('c') : p.get(W1A).mmul(p.get(W1B)).dup('c');
    }

    /** {@code w2 [outK, inN, K]} ('c'). */
    private INDArray w2(Map<String, INDArray> p) {
        int k = kernelPositions();
        if (fullW2) {
            return p.get(W2).dup('c').reshape('c', outK, inN, k);
        }
        if (effective) {
            return CpWeight.rebuild(p.get(T2), p.get(W2A), p.get(W2B));
        }
        return p.get(W2A).mmul(p.get(W2B)).dup('c').reshape('c', outK, inN, k);
    }

    @Override
    public INDArray deltaWeight(Map<String, INDArray> params) {
        INDArray w1 = w1(params);
        INDArray w2 = w2(params);
        int k = kernelPositions();
        INDArray outer = w1.reshape('c', outL * inM, 1).mmul(w2.reshape('c', 1, outK * inN * k));
        INDArray five = outer.reshape('c', outL, inM, outK, inN, k);
        INDArray ordered = permuted() ? five.permute(2, 0, 3, 1, 4) : five.permute(0, 2, 1, 3, 4);
        return ordered.dup('c').reshape('c', outFeatures(), columns()).muli(scaling());
    }

    @Override
    public void backward(Map<String, INDArray> params, INDArray dP, Map<String, INDArray> grads) {
        INDArray w1 = w1(params);
        INDArray w2 = w2(params);
        int k = kernelPositions();
        INDArray g5 = permuted()
                ? dP.dup('c').reshape('c', outK, outL, inN, inM, k).permute(1, 3, 0, 2, 4)
                : dP.dup('c').reshape('c', outL, outK, inM, inN, k).permute(0, 2, 1, 3, 4);
        INDArray gm = g5.dup('c').reshape('c', outL * inM, outK * inN * k);
        INDArray dW1 = gm.mmul(w2.reshape('c', outK * inN * k, 1)).muli(scaling()).reshape('c', outL, inM);
        INDArray dW2 = gm.transpose().mmul(w1.reshape('c', outL * inM, 1)).muli(scaling()).reshape('c', outK, inN, k);
        if (fullW1) {
            grads.get(W1).assign(dW1);
        } else {
            grads.get(W1A).assign(dW1.mmul(params.get(W1B).transpose()));
            grads.get(W1B).assign(params.get(W1A).transpose().mmul(dW1));
        }
        if (fullW2) {
            INDArray g = grads.get(W2);
            g.assign(dW2.reshape('c', g.shape()));
        } else if (effective) {
            CpWeight.backward(params.get(T2), params.get(W2A), params.get(W2B), dW2, grads.get(T2), grads.get(W2A),
                    grads.get(W2B));
        } else {
            INDArray d2 = dW2.reshape('c', outK, inN * k);
            grads.get(W2A).assign(d2.mmul(params.get(W2B).transpose()));
            grads.get(W2B).assign(params.get(W2A).transpose().mmul(d2));
        }
    }

    @Override
    public String toString() {
        return "LoKr(" + describeSettings() + ", out " + outL + "×" + outK + ", in " + inM + "×" + inN
                + (fullW1 ? "" : ", w1 low-rank") + (fullW2 ? "" : effective ? ", w2 effective conv" : ", w2 low-rank")
                + ")";
    }
}
