package org.peft4j.core.mpt;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.inputs.InputType;
import org.deeplearning4j.nn.conf.memory.LayerMemoryReport;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.serde.jackson.shaded.NDArrayDeSerializer;
import org.nd4j.serde.jackson.shaded.NDArraySerializer;
import org.nd4j.shade.jackson.annotation.JsonIgnore;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.nd4j.shade.jackson.databind.annotation.JsonDeserialize;
import org.nd4j.shade.jackson.databind.annotation.JsonSerialize;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.TunerLayer;
import org.peft4j.core.spi.BaseTunerLayer;
import org.peft4j.core.internal.ParamLayoutInitializer;
import org.peft4j.core.mpt.internal.MultitaskPromptLayerImpl;

/**
 * Multitask prompt tuning's prompts (Wang et al., arXiv 2303.02861; Hugging Face PEFT's
 * {@code MultitaskPromptEmbedding}): one prompt shared by all tasks, specialized per task by a
 * rank-{@code r} factor. It reads the task id of every example and emits that task's prompt,
 * which a {@link PromptPrependVertex} puts in front of the token embeddings.
 *
 * <pre>
 *   params:  E [d, p] = P*ᵀ ("prompt")     U [r, n·p] ("taskCols")     V [d, n·r] ("taskRows")
 *            u_k = U[:, k·p … k·p+p−1]ᵀ [p, r]     v_k = V[:, k·r … k·r+r−1]ᵀ [r, d]
 *   input:   task ids k [batch, 1] (integers 0 … n−1, as floating-point values)
 *   output:  y[i] = E ⊙ Q_k [d, p] for k = task of example i,   Q_k = V_k·U_k = (u_k·v_k)ᵀ
 *            i.e. the task prompt P_k = P* ⊙ (u_k·v_k) [p, d], held transposed   → y [batch, d, p]
 *   backward, with G_k = Σ_{i of task k} dy[i] [d, p]:
 *            dE = Σ_k G_k ⊙ Q_k      dQ_k = G_k ⊙ E      dV_k = dQ_k·U_kᵀ      dU_k = V_kᵀ·dQ_k
 * </pre>
 * The task ids are data, not activations: no epsilon flows to them. No weight decay on the prompt
 * or the factors.
 *
 * <p>Adapter files ({@link AdapterLayer}) hold Hugging Face PEFT's three model-level tensors:
 * {@code prompt_embeddings [p, d]} (= P*, i.e. {@code Eᵀ}), {@code prefix_task_cols [n, p, r]}
 * ({@code [k, i, j] = U[j, k·p + i]}) and {@code prefix_task_rows [n, r, d]}
 * ({@code [k, j, c] = V[c, k·r + j]}).
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it, except by the
 * flags of {@link TunerLayer}.
 */
public class MultitaskPromptLayer extends BaseTunerLayer implements AdapterLayer {
    private static final long serialVersionUID = 1L;

    /** Parameter key of the shared prompt {@code E = P*ᵀ [d, p]}. */
    public static final String PROMPT_KEY = "prompt";
    /** Parameter key of the task column factors {@code U [r, n·p]}. */
    public static final String COLS_KEY = "taskCols";
    /** Parameter key of the task row factors {@code V [d, n·r]}. */
    public static final String ROWS_KEY = "taskRows";
    /** Hugging Face PEFT's tensor names. */
    public static final String FILE_PROMPT = "prompt_embeddings";
    public static final String FILE_COLS = "prefix_task_cols";
    public static final String FILE_ROWS = "prefix_task_rows";

    @JsonProperty("embeddingLayer")
    private String embeddingLayer;
    @JsonProperty("numVirtualTokens")
    private int numVirtualTokens;
    @JsonProperty("numTasks")
    private int numTasks;
    @JsonProperty("numRanks")
    private int numRanks;
    @JsonProperty("initialPrompt")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray initialPrompt;
    @JsonProperty("initialCols")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray initialCols;
    @JsonProperty("initialRows")
    @JsonSerialize(using = NDArraySerializer.class)
    @JsonDeserialize(using = NDArrayDeSerializer.class)
    private INDArray initialRows;

    /** For JSON deserialization. */
    protected MultitaskPromptLayer() {
    }

    /**
     * @param embeddingLayer the base model's token embedding the prompts go after (their name in files)
     * @param initialPrompt {@code E [d, p]}, {@code p ≥ 1}
     * @param initialCols {@code U [r, n·p]}
     * @param initialRows {@code V [d, n·r]}
     * @param numTasks {@code n ≥ 1}
     * @param numRanks {@code r ≥ 1}
     * @throws IllegalArgumentException if a shape disagrees with the others
     */
    public MultitaskPromptLayer(String embeddingLayer, INDArray initialPrompt, INDArray initialCols, INDArray initialRows,
                                int numTasks, int numRanks) {
        this.embeddingLayer = Objects.requireNonNull(embeddingLayer, "embeddingLayer must not be null");
        if (numTasks < 1 || numRanks < 1) {
            throw new IllegalArgumentException("numTasks and numRanks must be positive; got " + numTasks + " and " + numRanks);
        }
        Objects.requireNonNull(initialPrompt, "initialPrompt must not be null");
        long d = initialPrompt.size(0);
        long p = initialPrompt.rank() == 2 ? initialPrompt.size(1) : 0;
        requireShape(initialPrompt, "prompt E", d, p);
        if (p < 1) {
            throw new IllegalArgumentException("multitask prompt: at least one virtual token is needed; got E "
                    + java.util.Arrays.toString(initialPrompt.shape()));
        }
        requireShape(initialCols, "task columns U", numRanks, (long) numTasks * p);
        requireShape(initialRows, "task rows V", d, (long) numTasks * numRanks);
        this.nIn = 1;
        this.nOut = d;
        this.numVirtualTokens = (int) p;
        this.numTasks = numTasks;
        this.numRanks = numRanks;
        this.initialPrompt = initialPrompt;
        this.initialCols = initialCols;
        this.initialRows = initialRows;
    }

    private static void requireShape(INDArray a, String what, long rows, long cols) {
        Objects.requireNonNull(a, what + " must not be null");
        if (a.rank() != 2 || a.size(0) != rows || a.size(1) != cols) {
            throw new IllegalArgumentException("multitask prompt: " + what + " must be [" + rows + ", " + cols + "], got "
                    + java.util.Arrays.toString(a.shape()));
        }
    }

    @JsonIgnore
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    @JsonIgnore
    public int numTasks() {
        return numTasks;
    }

    @JsonIgnore
    public int numRanks() {
        return numRanks;
    }

    /** The token embedding the prompts follow. */
    @Override
    public String baseLayerName() {
        return embeddingLayer;
    }

    /** None of its own: its tensors are model-level ({@link #sharedBlocks()}). */
    @Override
    public List<FrozenDenseLayer.SavedTensor> savedTensors() {
        return List.of();
    }

    /** The whole of {@value #FILE_PROMPT}, {@value #FILE_COLS} and {@value #FILE_ROWS}. */
    @Override
    public List<SharedBlock> sharedBlocks() {
        long p = numVirtualTokens;
        return List.of(new SharedBlock(FILE_PROMPT, new long[] {p, nOut}, 0, nOut, PROMPT_KEY),
                new SharedBlock(FILE_COLS, new long[] {numTasks, p, numRanks}, 0, numRanks, COLS_KEY),
                new SharedBlock(FILE_ROWS, new long[] {numTasks, numRanks, nOut}, 0, nOut, ROWS_KEY));
    }

    @Override
    public Map<String, long[]> paramShapes() {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put(PROMPT_KEY, new long[] {nOut, numVirtualTokens});
        m.put(COLS_KEY, new long[] {numRanks, (long) numTasks * numVirtualTokens});
        m.put(ROWS_KEY, new long[] {nOut, (long) numTasks * numRanks});
        return m;
    }

    @Override
    public boolean isWeightParam(String key) {
        return false;
    }

    @Override
    public void initParam(String key, INDArray view) {
        INDArray init = switch (key) {
            case PROMPT_KEY -> initialPrompt;
            case COLS_KEY -> initialCols;
            case ROWS_KEY -> initialRows;
            default -> throw new IllegalArgumentException("unknown parameter key \"" + key + "\" for layer "
                    + getLayerName() + "; keys are " + paramShapes().keySet());
        };
        view.assign(init.castTo(view.dataType()));
    }

    @Override
    public org.deeplearning4j.nn.api.Layer instantiate(NeuralNetConfiguration conf,
            Collection<TrainingListener> listeners, int layerIndex, INDArray layerParamsView,
            boolean initializeParams, DataType networkDataType) {
        return ParamLayoutInitializer.attach(new MultitaskPromptLayerImpl(conf, networkDataType), conf, listeners,
                layerIndex, layerParamsView, initializeParams);
    }

    /** Task ids in, the task prompts {@code [batch, d, p]} out. */
    @Override
    public InputType getOutputType(int layerIndex, InputType inputType) {
        return InputType.recurrent(nOut, numVirtualTokens);
    }

    @Override
    public void setNIn(InputType inputType, boolean override) {
        // one task id per example
    }

    @Override
    public LayerMemoryReport getMemoryReport(InputType inputType) {
        return ParamLayoutInitializer.memoryReport(this, inputType, getOutputType(-1, inputType), 0);
    }

    @Override
    public String toString() {
        return "MultitaskPromptLayer(name=" + getLayerName() + ", d=" + nOut + ", p=" + numVirtualTokens + ", tasks="
                + numTasks + ", ranks=" + numRanks + ", enabled=" + isAdapterEnabled() + ")";
    }
}
