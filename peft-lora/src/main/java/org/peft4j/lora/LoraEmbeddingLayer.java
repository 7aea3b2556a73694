package org.peft4j.lora;

import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.core.FrozenEmbeddingLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.spi.FrozenEmbeddingLayerImpl;
import org.peft4j.lora.internal.LoraEmbeddingLayerImpl;

/**
 * An embedding ({@code EmbeddingLayer}, {@code EmbeddingSequenceLayer}) with a frozen table and a
 * trainable low-rank table added to it (LoRA on embeddings, as Hugging Face PEFT's
 * {@code lora.Embedding}):
 * <pre>
 *   z = W[i] + b + s · A[i]·B         a = act(z)        i: the token index of a row
 *   W [vocab, nOut] (frozen)   A [vocab, r]   B [r, nOut]   s = alpha / r (rsLoRA: alpha / √r)
 * </pre>
 * Backward, with {@code delta = dL/dz [rows, nOut]} and {@code H = A[i] [rows, r]}:
 * {@code dL/dB = s·Hᵀ·delta}; {@code dL/dA[v] = s·Σ_{rows with i = v} delta_row·Bᵀ}. Indices get no
 * gradient. There is no dropout on this branch ({@link LoraConfig#dropout()} is not applied, as in
 * PEFT), and the initialisation is PEFT's for embeddings whatever {@link LoraConfig#initLoraWeights()}
 * says: {@code A = 0}, {@code B ~ N(0, 1)}, so a fresh adapter changes nothing.
 *
 * <p>With DoRA ({@link LoraConfig#useDora()}) a magnitude {@code m [nOut]} rescales each embedding
 * dimension: {@code n_j = ‖(W + s·A·B)[:, j]‖} over the vocabulary (a constant in backward),
 * {@code c = m / n}, {@code z = b + c ⊙ (W[i] + s·A[i]·B)}; {@code dL/dm_j = Σ_rows delta_j·(W[i] +
 * s·A[i]·B)_j / n_j} and the factors see {@code delta ⊙ c}. Merged: {@code W' = V ⊙ c} per column.
 *
 * <p>File tensors (PEFT's names, no {@code .weight}): {@code lora_embedding_A [r, vocab]},
 * {@code lora_embedding_B [nOut, r]}, {@code lora_magnitude_vector [nOut]}.
 *
 * <p>Thread-safety: see {@link FrozenEmbeddingLayer}.
 */
public class LoraEmbeddingLayer extends FrozenEmbeddingLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of {@code A [vocab, r]}. */
    public static final String LORA_A = LoraDenseLayer.LORA_A;
    /** Parameter key of {@code B [r, nOut]}. */
    public static final String LORA_B = LoraDenseLayer.LORA_B;
    /** Parameter key of DoRA's magnitude {@code m [nOut]}. */
    public static final String LORA_M = LoraDenseLayer.LORA_M;

    @JsonProperty("rank")
    private int rank;
    @JsonProperty("loraAlpha")
    private double loraAlpha;
    @JsonProperty("scaling")
    private double scaling;
    @JsonProperty("useDora")
    private boolean useDora;

    /** For JSON deserialization. */
    protected LoraEmbeddingLayer() {
    }

    LoraEmbeddingLayer(Target target, LoraConfig config) {
        super(target);
        this.rank = config.rankFor(target.layerName());
        this.loraAlpha = config.alphaFor(target.layerName());
        this.scaling = config.scalingFor(target.layerName());
        this.useDora = config.useDora();
    }

    @JsonIgnore
    public int rank() {
        return rank;
    }

    @JsonIgnore
    public double loraAlpha() {
        return loraAlpha;
    }

    /** The factor {@code s} applied to {@code A·B}. */
    @JsonIgnore
    public double scaling() {
        return scaling;
    }

    /** Whether this layer is DoRA (has the magnitude {@code loraM}). */
    @JsonIgnore
    public boolean useDora() {
        return useDora;
    }

    @Override
    public boolean hasAdapter() {
        return true;
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = super.paramShapes();
        m.put(LORA_A, new long[] {vocabularySize(), rank});
        m.put(LORA_B, new long[] {rank, nOut});
        if (useDora) {
            m.put(LORA_M, new long[] {nOut});
        }
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return LORA_A.equals(key) || LORA_B.equals(key) || (useDora && LORA_M.equals(key));
    }

    @Override
    public void initParam(String key, INDArray view) {
        if (LORA_A.equals(key)) {
            view.assign(0);
        } else if (LORA_B.equals(key)) {
            view.assign(Nd4j.randn(view.dataType(), view.shape()));
        } else if (useDora && LORA_M.equals(key)) {
            // m = ‖W + s·A·B‖ per column at the initial A, B; A = 0, so the norms of W
            view.assign(DoraWeights.columnNorms(frozenWeight()).reshape(view.shape()));
        } else {
            super.initParam(key, view);
        }
    }

    @Override
    public List<SavedTensor> savedTensors() {
        List<SavedTensor> l = super.savedTensors();
        l.add(new SavedTensor(LORA_A, "lora_embedding_A", true));
        l.add(new SavedTensor(LORA_B, "lora_embedding_B", true));
        if (useDora) {
            l.add(new SavedTensor(LORA_M, LoraDenseLayer.MAGNITUDE_SUFFIX, false));
        }
        return l;
    }

    @Override
    public void adoptConfig(PeftConfig config) {
        LoraConfig c = config instanceof LoraBased ? ((LoraBased) config).lora() : (LoraConfig) config;
        if (c.rankFor(baseLayerName()) != rank) {
            throw new IllegalArgumentException("layer " + getLayerName() + " has rank " + rank + ", adapter has rank "
                    + c.rankFor(baseLayerName()));
        }
        this.loraAlpha = c.alphaFor(baseLayerName());
        this.scaling = c.scalingFor(baseLayerName());
        this.useDora = c.useDora();
    }

    /** {@code W' = W + s·A·B [vocab, nOut]}; with DoRA {@code V ⊙ (m / ‖V‖)} per column, {@code V = W + s·A·B}. */
    @Override
    public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
        INDArray delta = params.get(LORA_A).mmul(params.get(LORA_B)).muli(scaling);
        INDArray v = base.add(delta.castTo(base.dataType()));
        return useDora ? DoraWeights.rescaleColumns(v, params.get(LORA_M)) : v;
    }

    @Override
    protected FrozenEmbeddingLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
        return new LoraEmbeddingLayerImpl(conf, dataType);
    }

    @Override
    public String toString() {
        return "LoraEmbeddingLayer(name=" + getLayerName() + ", base=" + baseLayerName() + ", vocab="
                + vocabularySize() + ", nOut=" + nOut + ", r=" + rank + ", alpha=" + loraAlpha + ", scaling=" + scaling
                + (useDora ? ", dora" : "") + ", merged=" + isMerged() + ", enabled=" + isAdapterEnabled() + ")";
    }
}
