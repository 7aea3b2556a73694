package org.peft4j.lora;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.deeplearning4j.nn.conf.layers.wrapper.BaseWrapperLayer;
import org.peft4j.core.BiasMode;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetKind;

/**
 * Arithmetic on LoRA adapters held by one {@link PeftModel}, as Hugging Face PEFT's
 * {@code add_weighted_adapter}. With {@code c_i = √(w_i · s_i)} for adapter {@code i} of weight
 * {@code w_i} and scaling {@code s_i}, per targeted layer:
 * <ul>
 *   <li>{@link Combination#LINEAR} (equal ranks): {@code A = Σ c_i A_i}, {@code B = Σ c_i B_i};</li>
 *   <li>{@link Combination#CAT}: {@code A = [c_1 A_1 | c_2 A_2 | …]}, {@code B} stacked likewise, rank
 *       {@code Σ r_i}, so that {@code A·B = Σ w_i s_i A_i B_i} exactly;</li>
 *   <li>{@link Combination#SVD}: {@code ΔW = Σ w_i s_i A_i B_i} truncated to rank {@code r} by SVD,
 *       {@code A = U_r S_r}, {@code B = V_rᵀ} (the best rank-r approximation in Frobenius norm).</li>
 * </ul>
 * The new adapter has {@code alpha = rank} (scaling 1), the sources' targets and dropout; it is
 * added to the model, not activated. Sources must target the same layers and train no biases or
 * whole modules. Embedding and convolution targets combine like dense ones (a convolution's
 * {@code A [r, nIn·kH·kW]} and {@code B [nOut, r]} as the transposed dense factors); DoRA adapters
 * are refused, as their magnitude vectors have no weighted sum that gives the sum of their updates.
 *
 * <p>Thread-safety: each call it makes on the {@link PeftModel} takes the model's lock, but a
 * combination as a whole is not atomic: do not delete or replace its source adapters from another
 * thread while it runs.
 */
public final class LoraAdapters {

    /** How weighted adapters are combined. */
    public enum Combination { LINEAR, CAT, SVD }

    private LoraAdapters() {
    }

    /**
     * Adds adapter {@code newName} combining {@code sources} with {@code weights}.
     *
     * @param svdRank the rank for {@link Combination#SVD} (ignored otherwise)
     * @throws IllegalArgumentException naming the problem for unknown sources, unequal lengths,
     *     non-finite weights, non-LoRA or DoRA sources, sources adapting different layers, unequal
     *     ranks under LINEAR, or a bad rank
     */
    public static void addWeightedAdapter(PeftModel peft, List<String> sources, double[] weights,
                                          Combination combination, String newName, int svdRank) {
        Objects.requireNonNull(peft, "peft");
        Objects.requireNonNull(sources, "sources");
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(combination, "combination");
        if (sources.isEmpty() || sources.size() != weights.length) {
            throw new IllegalArgumentException("give one weight per source adapter; got " + sources.size()
                    + " sources and " + weights.length + " weights");
        }
        for (int i = 0; i < weights.length; i++) {
            if (!Double.isFinite(weights[i])) {
                throw new IllegalArgumentException("weight " + i + " (of adapter \"" + sources.get(i) + "\") is "
                        + weights[i] + "; weights must be finite numbers");
            }
        }
        List<LoraConfig> configs = new ArrayList<>();
        List<Map<String, Map<String, INDArray>>> params = new ArrayList<>();
        for (String s : sources) {
            PeftConfig c = peft.adapterConfig(s);
            if (!(c instanceof LoraConfig)) {
                throw new IllegalArgumentException("adapter \"" + s + "\" is a " + c.getClass().getSimpleName()
                        + ", not a plain LoraConfig; weighted combinations take float LoRA adapters only");
            }
            LoraConfig l = (LoraConfig) c;
            if (l.useDora()) {
                throw new IllegalArgumentException("adapter \"" + s + "\" is DoRA; weighted combinations take plain LoRA "
                        + "adapters only (a DoRA update m ⊙ V / ‖V‖ is not a sum of its sources' factors)");
            }
            if (!l.modulesToSave().isEmpty() || l.bias() != BiasMode.NONE) {
                throw new IllegalArgumentException("adapter \"" + s + "\" trains biases or whole modules; weighted "
                        + "combinations cover LoRA factors only");
            }
            if (!l.rankPattern().isEmpty() || !l.alphaPattern().isEmpty()) {
                throw new IllegalArgumentException("adapter \"" + s + "\" has per-layer ranks or alphas (rankPattern "
                        + l.rankPattern() + ", alphaPattern " + l.alphaPattern() + "); weighted combinations take "
                        + "adapters of one rank and alpha");
            }
            // Compare the layers the adapters resolved to, not how their configs name them: "all-linear"
            // with a type filter and the list of names it resolved to (as saved files record it) agree.
            Map<String, Map<String, INDArray>> p = peft.adapterParameters(s);
            if (!configs.isEmpty() && !p.keySet().equals(params.get(0).keySet())) {
                throw new IllegalArgumentException("adapters \"" + sources.get(0) + "\" and \"" + s + "\" adapt different "
                        + "layers (" + new TreeSet<>(params.get(0).keySet()) + " vs " + new TreeSet<>(p.keySet()) + ")");
            }
            configs.add(l);
            params.add(p);
        }
        int rank;
        switch (combination) {
            case LINEAR:
                rank = configs.get(0).rank();
                for (LoraConfig c : configs) {
                    if (c.rank() != rank) {
                        throw new IllegalArgumentException("LINEAR needs sources of equal rank; got ranks "
                                + configs.stream().map(LoraConfig::rank).toList() + " (use CAT or SVD)");
                    }
                }
                break;
            case CAT:
                rank = configs.stream().mapToInt(LoraConfig::rank).sum();
                break;
            default:
                if (svdRank <= 0) {
                    throw new IllegalArgumentException("SVD needs a positive target rank; got " + svdRank);
                }
                rank = svdRank;
        }
        Map<String, Map<String, INDArray>> combined = new LinkedHashMap<>();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (String layer : params.get(0).keySet()) {
                boolean conv = isConvolution(peft, layer);
                INDArray[] ab = combine(layer, params, configs, weights, combination, rank, conv);
                Map<String, INDArray> t = new LinkedHashMap<>();
                t.put(LoraDenseLayer.LORA_A, conv ? ab[0].transpose().dup() : ab[0]);
                t.put(LoraDenseLayer.LORA_B, conv ? ab[1].transpose().dup() : ab[1]);
                combined.put(layer, t);
            }
        }
        LoraConfig first = configs.get(0);
        LoraConfig config = first.toBuilder().rank(rank).alpha(rank).useRsLora(false).build();
        peft.addAdapter(newName, config, combined);
    }

    /** Whether {@code layer} of the model is a convolution, whose LoRA factors are stored transposed. */
    private static boolean isConvolution(PeftModel peft, String layer) {
        org.deeplearning4j.nn.api.Layer l = peft.graph().getLayer(layer);
        org.deeplearning4j.nn.conf.layers.Layer c = l == null ? null : l.conf().getLayer();
        if (c instanceof FrozenBaseLayer) {
            return ((FrozenBaseLayer) c).kind() == TargetKind.CONVOLUTION;
        }
        if (c instanceof BaseWrapperLayer) {
            c = ((BaseWrapperLayer) c).getUnderlying();
        }
        return TargetKind.of(c) == TargetKind.CONVOLUTION;
    }

    /**
     * The combined factors of one layer as {@code A [k, rank]}, {@code B [rank, nOut]} (for a
     * convolution, {@code transposed}, of its stored factors transposed).
     */
    private static INDArray[] combine(String layer, List<Map<String, Map<String, INDArray>>> params,
                                      List<LoraConfig> configs, double[] weights, Combination how, int rank,
                                      boolean transposed) {
        int n = params.size();
        INDArray[] as = new INDArray[n];
        INDArray[] bs = new INDArray[n];
        double[] c = new double[n];
        for (int i = 0; i < n; i++) {
            INDArray a = params.get(i).get(layer).get(LoraDenseLayer.LORA_A);
            INDArray b = params.get(i).get(layer).get(LoraDenseLayer.LORA_B);
            as[i] = (transposed ? a.transpose() : a).castTo(DataType.DOUBLE);
            bs[i] = (transposed ? b.transpose() : b).castTo(DataType.DOUBLE);
            double prod = weights[i] * configs.get(i).scaling();
            if (prod < 0 && how != Combination.SVD) {
                throw new IllegalArgumentException("weight " + weights[i] + " is negative: LINEAR and CAT take √(w·s); "
                        + "use SVD for negative weights");
            }
            c[i] = Math.sqrt(Math.abs(prod));
        }
        DataType dt = params.get(0).get(layer).get(LoraDenseLayer.LORA_A).dataType();
        long nIn = as[0].size(0);
        long nOut = bs[0].size(1);
        switch (how) {
            case LINEAR: {
                INDArray a = Nd4j.zeros(DataType.DOUBLE, nIn, rank);
                INDArray b = Nd4j.zeros(DataType.DOUBLE, rank, nOut);
                for (int i = 0; i < n; i++) {
                    a.addi(as[i].mul(c[i]));
                    b.addi(bs[i].mul(c[i]));
                }
                return new INDArray[] {a.castTo(dt), b.castTo(dt)};
            }
            case CAT: {
                INDArray a = Nd4j.zeros(DataType.DOUBLE, nIn, rank);
                INDArray b = Nd4j.zeros(DataType.DOUBLE, rank, nOut);
                long at = 0;
                for (int i = 0; i < n; i++) {
                    long r = as[i].size(1);
                    a.get(NDArrayIndex.all(), NDArrayIndex.interval(at, at + r)).assign(as[i].mul(c[i]));
                    b.get(NDArrayIndex.interval(at, at + r), NDArrayIndex.all()).assign(bs[i].mul(c[i]));
                    at += r;
                }
                return new INDArray[] {a.castTo(dt), b.castTo(dt)};
            }
            default: {
                INDArray delta = Nd4j.zeros(DataType.DOUBLE, nIn, nOut);
                for (int i = 0; i < n; i++) {
                    delta.addi(as[i].mmul(bs[i]).muli(weights[i] * configs.get(i).scaling()));
                }
                long k = Math.min(nIn, nOut);
                if (rank > k) {
                    throw new IllegalArgumentException("SVD rank " + rank + " exceeds min(nIn, nOut) = " + k + " of layer "
                            + layer);
                }
                INDArray m = delta.dup('f');
                INDArray s = Nd4j.create(DataType.DOUBLE, k);
                INDArray u = Nd4j.create(DataType.DOUBLE, new long[] {nIn, nIn}, 'f');
                INDArray vt = Nd4j.create(DataType.DOUBLE, new long[] {nOut, nOut}, 'f');
                Nd4j.getBlasWrapper().lapack().gesvd(m, s, u, vt);
                INDArray a = u.get(NDArrayIndex.all(), NDArrayIndex.interval(0, rank)).mulRowVector(
                        s.get(NDArrayIndex.interval(0, rank)).reshape(1, rank));
                INDArray b = vt.get(NDArrayIndex.interval(0, rank), NDArrayIndex.all()).dup();
                return new INDArray[] {a.castTo(dt), b.castTo(dt)};
            }
        }
    }
}
