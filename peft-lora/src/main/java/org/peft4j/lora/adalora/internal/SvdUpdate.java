package org.peft4j.lora.adalora.internal;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.lora.adalora.AdaLoraLayer;

/**
 * The AdaLoRA update of one layer in SVD form, Hugging Face PEFT's {@code AdaLoraLayer}
 * ({@code tuners/adalora/layer.py}): its settings, its parameters and how they are written to a
 * file. Everything is in PEFT's (PyTorch) orientation, in the <em>row form</em> of the frozen layer
 * ({@code n} columns: {@code nIn} for a dense layer, {@code nIn·kH·kW} im2col columns for a 2D
 * convolution):
 * <pre>
 *   ΔW = κ · B · diag(E) · A      A [r, n] (P's rows: right singular vectors)   E [r] (Λ)   B [out, r] (Q)
 *   κ = lora_alpha / (ranknum + 1e-5),   ranknum = init_r
 * </pre>
 * {@code ranknum} stays {@code init_r} when the rank {@code r} held is smaller (an adapter reloaded
 * with its {@code rank_pattern}), as in PEFT, so the outputs do not change when pruned triplets are
 * dropped from the file.
 *
 * <p>The rank pattern (which of the {@code init_r} triplets are kept) comes from the config of a
 * loaded adapter, or from the rank allocator while training. While the layer holds all
 * {@code init_r} triplets and the pattern drops some, the file gets only the kept rows of
 * {@code A} and {@code E} and columns of {@code B} (PEFT's {@code resize_state_dict_by_rank_pattern});
 * they are written as computed blocks ({@link AdapterLayer.SharedBlock}) because a layer's own
 * tensors ({@code savedTensors}) are written in full. A layer that keeps no triplet writes no
 * tensor (see {@link #savedTensors}).
 *
 * <p>Serialized with the layer configuration (Jackson). Immutable: a changed pattern or
 * regularization makes a new value, so copies of a layer configuration never share a change.
 *
 * <p>Thread-safety: immutable.
 */
public final class SvdUpdate implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Parameter key of {@code A [r, n]} ({@code lora_A}). */
    public static final String LORA_A = AdaLoraLayer.LORA_A;
    /** Parameter key of {@code E [r]} ({@code lora_E}, {@code [r, 1]} in files). */
    public static final String LORA_E = AdaLoraLayer.LORA_E;
    /** Parameter key of {@code B [out, r]} ({@code lora_B}). */
    public static final String LORA_B = AdaLoraLayer.LORA_B;
    /** PEFT's initial standard deviation of {@code A} and {@code B} ({@code reset_lora_parameters}). */
    static final double INIT_STD = 0.02;
    private static final String PREFIX = "base_model.model.";

    @JsonProperty("rank")
    private int rank;
    @JsonProperty("initRank")
    private int initRank;
    @JsonProperty("loraAlpha")
    private double loraAlpha;
    @JsonProperty("dropout")
    private double dropout;
    @JsonProperty("orthRegWeight")
    private double orthRegWeight;
    @JsonProperty("orthRegMatrices")
    private int orthRegMatrices;
    @JsonProperty("rankPattern")
    private boolean[] rankPattern;
    @JsonProperty("outFeatures")
    private long outFeatures;
    @JsonProperty("columns")
    private long columns;

    /** For JSON deserialization. */
    private SvdUpdate() {
    }

    /**
     * @param rankPattern the kept triplets ({@code initRank} entries), or null; when given, the
     *     layer holds as many triplets as it keeps
     * @param columns {@code n}: input features, or input channels times kernel positions
     */
    public SvdUpdate(int initRank, double loraAlpha, double dropout, double orthRegWeight, boolean[] rankPattern,
                     long outFeatures, long columns) {
        this.initRank = initRank;
        this.rankPattern = rankPattern == null ? null : rankPattern.clone();
        this.rank = rankPattern == null ? initRank : kept(rankPattern);
        this.loraAlpha = loraAlpha;
        this.dropout = dropout;
        this.orthRegWeight = orthRegWeight;
        this.outFeatures = outFeatures;
        this.columns = columns;
    }

    private SvdUpdate copy() {
        SvdUpdate s = new SvdUpdate();
        s.rank = rank;
        s.initRank = initRank;
        s.loraAlpha = loraAlpha;
        s.dropout = dropout;
        s.orthRegWeight = orthRegWeight;
        s.orthRegMatrices = orthRegMatrices;
        s.rankPattern = rankPattern == null ? null : rankPattern.clone();
        s.outFeatures = outFeatures;
        s.columns = columns;
        return s;
    }

    /** Number of {@code true} entries. */
    public static int kept(boolean[] pattern) {
        int n = 0;
        for (boolean b : pattern) {
            n += b ? 1 : 0;
        }
        return n;
    }

    /** Triplets held (rows of {@code A}). */
    public int rank() {
        return rank;
    }

    /** PEFT's {@code ranknum}: {@code init_r}. */
    public int initRank() {
        return initRank;
    }

    public double loraAlpha() {
        return loraAlpha;
    }

    /** {@code κ = lora_alpha / (init_r + 1e-5)}. */
    public double scaling() {
        return loraAlpha / (initRank + 1e-5);
    }

    public double dropout() {
        return dropout;
    }

    public double orthRegWeight() {
        return orthRegWeight;
    }

    /** {@code N} of the orthogonal regularizer (2 per AdaLoRA layer of the model), 0 until an allocator set it. */
    public int orthRegMatrices() {
        return orthRegMatrices;
    }

    /** The kept triplets, {@code init_r} entries (a copy), or null when no allocation was made. */
    public boolean[] rankPattern() {
        return rankPattern == null ? null : rankPattern.clone();
    }

    public long outFeatures() {
        return outFeatures;
    }

    public long columns() {
        return columns;
    }

    /** This update with rank pattern {@code pattern} (for a layer holding all {@code init_r} triplets). */
    public SvdUpdate withRankPattern(boolean[] pattern) {
        if (rank != initRank || pattern.length != initRank) {
            throw new IllegalStateException("a rank pattern of " + pattern.length + " entries cannot be set on a layer "
                    + "holding " + rank + " of " + initRank + " triplets");
        }
        SvdUpdate s = copy();
        s.rankPattern = pattern.clone();
        return s;
    }

    /** This update with {@code n} matrices in the orthogonal regularizer. */
    public SvdUpdate withOrthRegMatrices(int n) {
        SvdUpdate s = copy();
        s.orthRegMatrices = n;
        return s;
    }

    /** This update with another adapter's settings for the same layer (same number of triplets held). */
    public SvdUpdate adopt(SvdUpdate other) {
        if (other.rank != rank) {
            throw new IllegalArgumentException("the layer holds " + rank + " triplets, the adapter switched to holds "
                    + other.rank);
        }
        return other.copy();
    }

    /** {@code A [r, n]}, {@code E [r]}, {@code B [out, r]}; none when no triplet is held. */
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        if (rank > 0) {
            m.put(LORA_A, new long[] {rank, columns});
            m.put(LORA_E, new long[] {rank});
            m.put(LORA_B, new long[] {outFeatures, rank});
        }
        return m;
    }

    public boolean isParam(String key) {
        return rank > 0 && (LORA_A.equals(key) || LORA_E.equals(key) || LORA_B.equals(key));
    }

    /** PEFT's {@code reset_lora_parameters}: {@code E = 0} (a new adapter changes nothing), {@code A, B ~ N(0, 0.02²)}. */
    public void initParam(String key, INDArray view) {
        if (LORA_E.equals(key)) {
            view.assign(0);
        } else {
            view.assign(Nd4j.randn(view.dataType(), view.shape()).muli(INIT_STD));
        }
    }

    /** Whether the file gets only the kept triplets of a layer that holds all of them. */
    private boolean prunedOnSave() {
        return rankPattern != null && rank == initRank && kept(rankPattern) < rank;
    }

    /**
     * {@code lora_A [r, n]}, {@code lora_E [r, 1]}, {@code lora_B [out, r]} (no {@code .weight}:
     * PEFT keeps them in {@code ParameterDict}s); none while the file gets the kept triplets only
     * ({@link #sharedBlocks}), and none for a layer that keeps no triplet: PEFT would write the
     * empty tensors {@code [0, n]}, {@code [0, 1]}, {@code [out, 0]}, which a layer cannot declare
     * here ({@link AdapterLayer.SharedBlock} needs a column); PEFT loads such a file all the same,
     * those zero-size tensors being the ones its resized layer already has.
     */
    public List<FrozenBaseLayer.SavedTensor> savedTensors() {
        List<FrozenBaseLayer.SavedTensor> l = new ArrayList<>();
        if (rank > 0 && !prunedOnSave()) {
            l.add(new FrozenBaseLayer.SavedTensor(LORA_A, "lora_A", false));
            l.add(new FrozenBaseLayer.SavedTensor(LORA_E, "lora_E", false, new long[] {rank, 1}));
            l.add(new FrozenBaseLayer.SavedTensor(LORA_B, "lora_B", false));
        }
        return l;
    }

    /** The kept rows of {@code A} and {@code E} and columns of {@code B}, while the layer holds pruned triplets too. */
    public List<AdapterLayer.SharedBlock> sharedBlocks(String baseLayerName) {
        int k = rankPattern == null ? 0 : kept(rankPattern);
        if (!prunedOnSave() || k == 0) {
            return List.of();
        }
        String p = PREFIX + baseLayerName + ".";
        return List.of(new AdapterLayer.SharedBlock(p + "lora_A", new long[] {k, columns}, 0, columns, null),
                new AdapterLayer.SharedBlock(p + "lora_E", new long[] {k, 1}, 0, 1, null),
                new AdapterLayer.SharedBlock(p + "lora_B", new long[] {outFeatures, k}, 0, k, null));
    }

    /** The value of one of {@link #sharedBlocks}: the kept triplets' part of {@code lora_A}, {@code lora_E} or {@code lora_B}. */
    public INDArray sharedBlockValue(AdapterLayer.SharedBlock block, Map<String, INDArray> params) {
        long[] keep = keptIndices();
        String name = block.fileName();
        if (name.endsWith(".lora_A")) {
            return params.get(LORA_A).get(NDArrayIndex.indices(keep), NDArrayIndex.all()).dup('c');
        }
        if (name.endsWith(".lora_E")) {
            return params.get(LORA_E).reshape(rank, 1).get(NDArrayIndex.indices(keep), NDArrayIndex.all()).dup('c');
        }
        if (name.endsWith(".lora_B")) {
            return params.get(LORA_B).get(NDArrayIndex.all(), NDArrayIndex.indices(keep)).dup('c');
        }
        throw new IllegalArgumentException("not a block of this layer: " + block);
    }

    private long[] keptIndices() {
        long[] out = new long[kept(rankPattern)];
        int j = 0;
        for (int i = 0; i < rankPattern.length; i++) {
            if (rankPattern[i]) {
                out[j++] = i;
            }
        }
        return out;
    }

    /** {@code ΔW = κ·B·diag(E)·A [out, n]} in the parameters' data type (zeros when no triplet is held). */
    public INDArray deltaRows(Map<String, INDArray> params) {
        if (rank == 0) {
            return Nd4j.zeros(outFeatures, columns);
        }
        INDArray a = params.get(LORA_A);
        INDArray scaledA = a.mulColumnVector(params.get(LORA_E).reshape(rank, 1));
        return params.get(LORA_B).mmul(scaledA).muli(scaling());
    }

    /**
     * The orthogonal regularizer of parameter {@code key} ({@code A} or {@code B}), or null when
     * there is none: no triplet held, weight 0, or not bound to an allocator ({@code N = 0}).
     */
    public Regularization orthogonalRegularization(String key) {
        if (rank == 0 || orthRegWeight == 0 || orthRegMatrices == 0) {
            return null;
        }
        if (LORA_A.equals(key)) {
            return new OrthogonalRegularization(orthRegWeight / orthRegMatrices, true, rank, columns);
        }
        if (LORA_B.equals(key)) {
            return new OrthogonalRegularization(orthRegWeight / orthRegMatrices, false, outFeatures, rank);
        }
        return null;
    }

    @Override
    public String toString() {
        return "r=" + rank + ", init_r=" + initRank + ", alpha=" + loraAlpha + ", scaling=" + scaling() + ", dropout="
                + dropout + ", orth_reg_weight=" + orthRegWeight + (orthRegMatrices > 0 ? " (over " + orthRegMatrices
                + " matrices)" : "") + (rankPattern == null ? "" : ", rank_pattern=" + Arrays.toString(rankPattern));
    }
}
