package org.peft4j.lora.loha;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
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
 * LoHa's update of one layer (FedPara, arXiv 2108.06098; Hugging Face PEFT {@code tuners/loha/layer.py}),
 * in PEFT's orientation, {@code s = alpha / r}, {@code in' = in·K}:
 * <pre>
 *   flat:       ΔW = s · (w1a·w1b) ⊙ (w2a·w2b)      w1a, w2a [out, r]   w1b, w2b [r, in']
 *   effective:  ΔW = s · R1 ⊙ R2,  R_n[o, c, p] = Σ_{i,j} t_n[i, j, p]·wna[i, o]·wnb[j, c]
 *               t1, t2 [r, r, kH, kW] (1D: [r, r, k, 1])   w1a, w2a [r, out]   w1b, w2b [r, in]
 * </pre>
 * The effective form (PEFT's {@code use_effective_conv2d}) applies to convolutions whose kernel has
 * more than one position; the update's rank is up to {@code r²}. Backward, with
 * {@code dP = dL/dΔW [out, in']}, flat: {@code T1 = s·dP ⊙ (w2a·w2b)}, {@code d w1a = T1·w1bᵀ},
 * {@code d w1b = w1aᵀ·T1}, and the same for {@code w2} with {@code T2 = s·dP ⊙ (w1a·w1b)};
 * effective: {@code dR1 = s·dP ⊙ R2}, {@code dR2 = s·dP ⊙ R1}, then {@link CpWeight#backward}.
 *
 * <p>Init as PEFT: every factor Kaiming-uniform except {@code w2b = 0}, so a fresh adapter changes
 * nothing; with {@code init_weights = false} {@code w2b} is Kaiming-uniform too.
 *
 * <p>Thread-safety: immutable.
 */
final class HadamardProduct extends LycorisAdapter {
    private static final long serialVersionUID = 1L;

    static final String W1A = "hadaW1a";
    static final String W1B = "hadaW1b";
    static final String W2A = "hadaW2a";
    static final String W2B = "hadaW2b";
    static final String T1 = "hadaT1";
    static final String T2 = "hadaT2";

    @JsonProperty("effective")
    private boolean effective;
    @JsonProperty("initWeights")
    private boolean initWeights;

    /** For JSON deserialization. */
    private HadamardProduct() {
    }

    /** The update of {@code target} as {@code config} sets it up. */
    static HadamardProduct of(LoHaConfig config, Target target) {
        long[] shape = targetShape(target);
        return new HadamardProduct(config, config.rankFor(target.layerName()), config.alphaFor(target.layerName()), shape[0],
                shape[1], kernelOf(shape));
    }

    /**
     * The update of a layer with {@code out} outputs, {@code in} inputs and the given kernel
     * (empty for a dense layer), configured by {@code config} with rank {@code rank} and
     * {@code alpha}.
     */
    HadamardProduct(LoHaConfig config, int rank, double alpha, long out, long in, int[] kernel) {
        super(rank, alpha, config.rankDropout(), true, config.moduleDropout(), out, in, kernel);
        this.effective = config.useEffectiveConv2d() && kernel.length > 0 && kernelPositions() > 1;
        this.initWeights = config.initWeights();
    }

    @Override
    public LycorisAdapter adopt(PeftConfig config, String layerName) {
        if (config instanceof LoHaConfig c) {
            HadamardProduct other = new HadamardProduct(c, c.rankFor(layerName), c.alphaFor(layerName), outFeatures(), inFeatures(),
                    kernel());
            if (sameLayout(other)) {
                return other;
            }
        }
        throw new IllegalArgumentException("a LoHa layer with " + this + " cannot take the settings of " + config);
    }

    /** Whether the update has the effective convolution form ({@code hada_t1}, {@code hada_t2}). */
    boolean effective() {
        return effective;
    }

    private long[] coreShape() {
        int[] k = kernel();
        return k.length == 2 ? new long[] {rank(), rank(), k[0], k[1]} : new long[] {rank(), rank(), k[0], 1};
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        long r = rank();
        for (int n = 1; n <= 2; n++) {
            if (effective) {
                m.put(n == 1 ? T1 : T2, coreShape());
                m.put(n == 1 ? W1A : W2A, new long[] {r, outFeatures()});
                m.put(n == 1 ? W1B : W2B, new long[] {r, inFeatures()});
            } else {
                m.put(n == 1 ? W1A : W2A, new long[] {outFeatures(), r});
                m.put(n == 1 ? W1B : W2B, new long[] {r, columns()});
            }
        }
        return m;
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (!paramShapes().containsKey(key)) {
            throw new IllegalArgumentException("unknown LoHa parameter \"" + key + "\"");
        }
        if (W2B.equals(key) && initWeights) {
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

    /** PEFT's name of a factor: {@code hadaW1a → hada_w1_a}, {@code hadaT1 → hada_t1}. */
    static String fileSuffix(String key) {
        String rest = key.substring("hada".length()).toLowerCase(java.util.Locale.ROOT);
        return "hada_" + (rest.length() == 3 ? rest.substring(0, 2) + "_" + rest.substring(2) : rest);
    }

    /** {@code [R1, R2]} as {@code [out, in, K]} (effective form), or {@code [w1a·w1b, w2a·w2b]} (flat). */
    private INDArray[] halves(Map<String, INDArray> p) {
        if (effective) {
            return new INDArray[] {CpWeight.rebuild(p.get(T1), p.get(W1A), p.get(W1B)),
                    CpWeight.rebuild(p.get(T2), p.get(W2A), p.get(W2B))};
        }
        return new INDArray[] {p.get(W1A).mmul(p.get(W1B)), p.get(W2A).mmul(p.get(W2B))};
    }

    @Override
    public INDArray deltaWeight(Map<String, INDArray> params) {
        INDArray[] h = halves(params);
        INDArray p = h[0].mul(h[1]).muli(scaling());
        return p.dup('c').reshape('c', outFeatures(), columns());
    }

    @Override
    public void backward(Map<String, INDArray> params, INDArray dP, Map<String, INDArray> grads) {
        INDArray[] h = halves(params);
        INDArray g = effective ? dP.dup('c').reshape('c', h[0].shape()) : dP;
        INDArray d1 = g.mul(h[1]).muli(scaling());
        INDArray d2 = g.mul(h[0]).muli(scaling());
        if (effective) {
            CpWeight.backward(params.get(T1), params.get(W1A), params.get(W1B), d1, grads.get(T1), grads.get(W1A),
                    grads.get(W1B));
            CpWeight.backward(params.get(T2), params.get(W2A), params.get(W2B), d2, grads.get(T2), grads.get(W2A),
                    grads.get(W2B));
        } else {
            grads.get(W1A).assign(d1.mmul(params.get(W1B).transpose()));
            grads.get(W1B).assign(params.get(W1A).transpose().mmul(d1));
            grads.get(W2A).assign(d2.mmul(params.get(W2B).transpose()));
            grads.get(W2B).assign(params.get(W2A).transpose().mmul(d2));
        }
    }

    @Override
    public String toString() {
        return "LoHa(" + describeSettings() + (effective ? ", effective conv" : "") + ")";
    }
}
