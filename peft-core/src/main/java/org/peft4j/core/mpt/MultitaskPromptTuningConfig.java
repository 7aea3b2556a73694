package org.peft4j.core.mpt;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.layers.FeedForwardLayer;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.GraphEdit;
import org.peft4j.core.ModulesToSaveBuilder;
import org.peft4j.core.Targeting;
import org.peft4j.core.UntargetedConfig;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.internal.GraphRewriter;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.prompt.PromptTrimLayer;
import org.peft4j.core.spi.Vertices;

/**
 * Configuration of multitask prompt tuning (Wang et al., "Multitask Prompt Tuning Enables
 * Parameter-Efficient Transfer Learning", arXiv 2303.02861), with Hugging Face PEFT's option names
 * ({@code MULTITASK_PROMPT_TUNING}): one prompt {@code P* [p, d]} shared by {@code n} tasks, made
 * specific to task {@code k} by a rank-{@code r} factor, {@code P_k = P* ⊙ (u_k·v_k)} with
 * {@code u_k [p, r]}, {@code v_k [r, d]}; the base model is frozen.
 *
 * <p>Two stages, as in the paper: train on several source tasks ({@code numTasks = S}, each
 * example labelled with its task), save the adapter; then start a target task from the source
 * adapter with {@link MultitaskPromptInit} ({@code AVERAGE_SOURCE_TASKS}, {@code EXACT_SOURCE_TASK},
 * {@code ONLY_SOURCE_SHARED}) and train it alone:
 * <pre>{@code
 * PeftModel source = Peft.wrap(decoder, MultitaskPromptTuningConfig.builder()
 *         .numVirtualTokens(8).numTasks(4).numRanks(1).build());
 * source.graph().fit(new MultiDataSet(new INDArray[] {tokens, taskIds}, new INDArray[] {labels}));
 * source.saveAdapter(dir);
 * PeftModel target = Peft.wrap(decoder, MultitaskPromptTuningConfig.builder().numVirtualTokens(8)
 *         .initFromAverageOfSourceTasks(dir.resolve("adapter_model.safetensors")).build());
 * }</pre>
 *
 * <p>The wrapped graph gains a network input, {@link #taskInput()} ({@code task_ids} by default,
 * PEFT's argument name): task ids {@code [batch, 1]} after the base graph's inputs, so training
 * and inference take a {@code MultiDataSet} or {@code output(tokens, taskIds)}. Three pieces are
 * inserted: a {@link MultitaskPromptLayer} {@code <embedding>.taskprompt} reading the task ids, a
 * {@link PromptPrependVertex} {@code <embedding>.prompt} after the token embedding, and a
 * {@link PromptTrimLayer} {@code <output>.trim} before the output layer. Inputs, masks and labels
 * keep the caller's length {@code T}; a positional table must cover {@code p + T} positions.
 * Multitask prompt tuning cannot be merged into stock layers.
 *
 * <p>Files: PEFT's layout ({@code prompt_embeddings [p, d]}, {@code prefix_task_cols [n, p, r]},
 * {@code prefix_task_rows [n, r, d]}; {@code adapter_config.json} with {@code num_tasks},
 * {@code num_ranks}, {@code prompt_tuning_init}, {@code prompt_tuning_init_state_dict_path},
 * {@code prompt_tuning_init_task}, {@code token_dim}, ...).
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class MultitaskPromptTuningConfig implements UntargetedConfig {

    /** The {@code peft_type} of this method's adapter files. */
    public static final String PEFT_TYPE = "MULTITASK_PROMPT_TUNING";
    /** Default name of the task-id input: the argument name of PEFT's forward. */
    public static final String DEFAULT_TASK_INPUT = "task_ids";
    /** Standard deviation of the initial task factors (PEFT's). */
    public static final double FACTOR_INIT_STD = 0.02;

    private final int numVirtualTokens;
    private final int numTasks;
    private final int numRanks;
    private final MultitaskPromptInit init;
    private final List<Integer> initTokens;
    private final String initStatePath;
    private final int initTask;
    private final String embeddingLayer;
    private final String outputLayer;
    private final String taskInput;
    private final Targeting targeting;

    private MultitaskPromptTuningConfig(Builder b, Targeting targeting) {
        this.numVirtualTokens = b.numVirtualTokens;
        this.numTasks = b.numTasks;
        this.numRanks = b.numRanks;
        this.init = b.init;
        this.initTokens = List.copyOf(b.initTokens);
        this.initStatePath = b.initStatePath;
        this.initTask = b.initTask;
        this.embeddingLayer = b.embeddingLayer;
        this.outputLayer = b.outputLayer;
        this.taskInput = b.taskInput;
        this.targeting = targeting;
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public String peftType() {
        return PEFT_TYPE;
    }

    /** {@code p}: virtual tokens. */
    public int numVirtualTokens() {
        return numVirtualTokens;
    }

    /** {@code n}: tasks, ids 0 … n−1. */
    public int numTasks() {
        return numTasks;
    }

    /** {@code r}: rank of the task factors. */
    public int numRanks() {
        return numRanks;
    }

    public MultitaskPromptInit init() {
        return init;
    }

    /** Token ids of a {@link MultitaskPromptInit#TEXT} init; else empty. */
    public List<Integer> initTokens() {
        return initTokens;
    }

    /** The source adapter's weights file of a source init ({@code prompt_tuning_init_state_dict_path}); else null. */
    public String initStatePath() {
        return initStatePath;
    }

    /** The source task of {@link MultitaskPromptInit#EXACT_SOURCE_TASK} ({@code prompt_tuning_init_task}). */
    public int initTask() {
        return initTask;
    }

    public String embeddingLayer() {
        return embeddingLayer;
    }

    public String outputLayer() {
        return outputLayer;
    }

    /** The network input of the wrapped graph that carries the task ids {@code [batch, 1]}. */
    public String taskInput() {
        return taskInput;
    }

    /** The inserted {@link PromptPrependVertex}: {@code <embeddingLayer>.prompt}. */
    public String promptVertexName() {
        return embeddingLayer + ".prompt";
    }

    /** The inserted {@link MultitaskPromptLayer}: {@code <embeddingLayer>.taskprompt}. */
    public String taskPromptLayerName() {
        return embeddingLayer + ".taskprompt";
    }

    /** The options every method shares: here modules to save only ({@link Targeting.Scope#MODULES_TO_SAVE}). */
    @Override
    public Targeting targeting() {
        return targeting;
    }

    /**
     * Hugging Face PEFT's keys of {@code MultitaskPromptTuningConfig} beyond the shared ones:
     * {@code num_virtual_tokens}, {@code num_tasks}, {@code num_ranks}, {@code prompt_tuning_init},
     * {@code prompt_tuning_init_state_dict_path}, {@code prompt_tuning_init_task},
     * {@code prompt_tuning_init_text} (null: peft4j starts from token ids, not text),
     * {@code num_transformer_submodules} 1; {@code token_dim} comes from the wrapped graph.
     * peft4j's extension keys: {@code embedding_layer}, {@code output_layer}, {@code task_input}
     * and, for TEXT, {@code init_token_ids}.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>();
        m.put("num_virtual_tokens", numVirtualTokens);
        m.put("num_tasks", numTasks);
        m.put("num_ranks", numRanks);
        m.put("token_dim", null);
        m.put("num_transformer_submodules", 1);
        m.put("prompt_tuning_init", init.name());
        m.put("prompt_tuning_init_text", null);
        m.put("prompt_tuning_init_state_dict_path", initStatePath);
        m.put("prompt_tuning_init_task", initTask);
        m.put("tokenizer_name_or_path", null);
        Map<String, Object> ext = new TreeMap<>();
        ext.put("embedding_layer", embeddingLayer);
        ext.put("output_layer", outputLayer);
        ext.put("task_input", taskInput);
        if (init == MultitaskPromptInit.TEXT) {
            ext.put("init_token_ids", new ArrayList<>(initTokens));
        }
        m.put("peft4j", ext);
        return m;
    }

    /** With {@code token_dim}: the width of the prompts in {@code wrapped}. */
    @Override
    public Map<String, Object> toAdapterConfig(ComputationGraph wrapped) {
        Map<String, Object> m = toAdapterConfig();
        Layer l = Vertices.layerOf(wrapped.getConfiguration(), taskPromptLayerName());
        if (l instanceof MultitaskPromptLayer mpt) {
            m.put("token_dim", mpt.getNOut());
        }
        return m;
    }

    @Override
    public Set<String> baseModelKeys() {
        return Set.of("token_dim");
    }

    /** Sizes and where the pieces go (the init is only a starting value). */
    @Override
    public String layoutSignature() {
        return PEFT_TYPE + " p=" + numVirtualTokens + " n=" + numTasks + " r=" + numRanks + " after=" + embeddingLayer
                + " before=" + outputLayer + " input=" + taskInput + " " + targeting.signature();
    }

    /**
     * The task-id input, the {@link MultitaskPromptLayer} reading it, the {@link PromptPrependVertex}
     * after the embedding and the {@link PromptTrimLayer} before the output layer, with the initial
     * prompt and factors of {@link #init()}.
     *
     * @throws IllegalArgumentException if a layer is missing, the embedding has no table
     *     {@code W [vocab, d]}, an init token id is outside the vocabulary, or the source file is
     *     missing or does not fit (the message names the tensor, its shape and what was expected)
     */
    @Override
    public List<GraphEdit> graphEdits(ComputationGraph base) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        Layer emb = Vertices.layerOf(conf, embeddingLayer);
        if (!(emb instanceof FeedForwardLayer)) {
            throw new IllegalArgumentException("multitask prompt tuning: no embedding layer named \"" + embeddingLayer
                    + "\"; layers are: " + GraphRewriter.describeLayers(conf));
        }
        if (Vertices.layerOf(conf, outputLayer) == null || !conf.getNetworkOutputs().contains(outputLayer)) {
            throw new IllegalArgumentException("multitask prompt tuning: no output layer named \"" + outputLayer
                    + "\"; outputs are " + conf.getNetworkOutputs());
        }
        long d = ((FeedForwardLayer) emb).getNOut();
        INDArray table = base.getLayer(embeddingLayer).getParam("W");
        if (table == null || table.rank() != 2 || table.size(1) != d) {
            throw new IllegalArgumentException("multitask prompt tuning: layer \"" + embeddingLayer + "\" has no embedding "
                    + "table W [vocab, " + d + "]");
        }
        MultitaskPromptLayer layer;
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            Initial start = initial(table.castTo(DataType.DOUBLE), d);
            layer = new MultitaskPromptLayer(embeddingLayer, start.prompt(), start.cols(), start.rows(), numTasks, numRanks);
        }
        return List.of(
                GraphEdit.addInput(taskInput),
                GraphEdit.add(taskPromptLayerName(), layer, taskInput),
                GraphEdit.insertAfter(embeddingLayer, promptVertexName(), new PromptPrependVertex(numVirtualTokens),
                        taskPromptLayerName()),
                GraphEdit.insertBefore(outputLayer, outputLayer + ".trim", new PromptTrimLayer(d, numVirtualTokens)));
    }

    /** The starting {@code E [d, p]}, {@code U [r, n·p]}, {@code V [d, n·r]} (double). */
    record Initial(INDArray prompt, INDArray cols, INDArray rows) {
    }

    Initial initial(INDArray table, long d) {
        int p = numVirtualTokens;
        INDArray prompt;
        INDArray cols = Nd4j.randn(DataType.DOUBLE, numRanks, (long) numTasks * p).muli(FACTOR_INIT_STD);
        INDArray rows = Nd4j.randn(DataType.DOUBLE, d, (long) numTasks * numRanks).muli(FACTOR_INIT_STD);
        switch (init) {
            case RANDOM -> {
                double std = table.stdNumber().doubleValue();
                prompt = Nd4j.randn(DataType.DOUBLE, d, p).muli(std > 0 ? std : 1.0);
            }
            case TEXT -> {
                prompt = Nd4j.create(DataType.DOUBLE, d, p);
                for (int id : initTokens) {
                    if (id >= table.size(0)) {
                        throw new IllegalArgumentException("multitask prompt tuning: init token id " + id + " is outside "
                                + "the vocabulary of \"" + embeddingLayer + "\" (" + table.size(0) + " tokens)");
                    }
                }
                for (int j = 0; j < p; j++) {
                    prompt.getColumn(j).assign(table.getRow(initTokens.get(j % initTokens.size())));
                }
            }
            default -> {
                Source s = Source.read(Path.of(initStatePath), p, d);
                prompt = s.prompt().transpose().dup('c');
                if (init != MultitaskPromptInit.ONLY_SOURCE_SHARED) {
                    if (s.ranks() != numRanks) {
                        throw new IllegalArgumentException("multitask prompt tuning: " + init + " copies the source's task "
                                + "factors, of rank " + s.ranks() + " in " + initStatePath + "; set numRanks(" + s.ranks()
                                + ") (this config has " + numRanks + ")");
                    }
                    INDArray u;
                    INDArray v;
                    if (init == MultitaskPromptInit.AVERAGE_SOURCE_TASKS) {
                        u = s.cols().mean(0);
                        v = s.rows().mean(0);
                    } else {
                        if (initTask >= s.tasks()) {
                            throw new IllegalArgumentException("multitask prompt tuning: source task " + initTask
                                    + " does not exist; " + initStatePath + " holds " + s.tasks() + " tasks (0 … "
                                    + (s.tasks() - 1) + ")");
                        }
                        u = s.cols().get(NDArrayIndex.point(initTask), NDArrayIndex.all(), NDArrayIndex.all());
                        v = s.rows().get(NDArrayIndex.point(initTask), NDArrayIndex.all(), NDArrayIndex.all());
                    }
                    cols = u.transpose().dup('c');
                    rows = v.transpose().dup('c');
                }
            }
        }
        return new Initial(prompt, cols, rows);
    }

    /** The three tensors of a source adapter file, checked against this config. */
    private record Source(INDArray prompt, INDArray cols, INDArray rows) {

        long tasks() {
            return cols.size(0);
        }

        long ranks() {
            return cols.size(2);
        }

        static Source read(Path file, long p, long d) {
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("multitask prompt tuning: the source adapter file " + file + " does "
                        + "not exist; give the adapter_model.safetensors that saveAdapter wrote for the source tasks");
            }
            SafetensorsFile f;
            try {
                f = Safetensors.read(file);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read the source adapter file " + file, e);
            } catch (AdapterFormatException e) {
                throw new IllegalArgumentException("multitask prompt tuning: " + file + " is not a safetensors file: "
                        + e.getMessage(), e);
            }
            INDArray prompt = tensor(f, file, MultitaskPromptLayer.FILE_PROMPT, 2);
            INDArray cols = tensor(f, file, MultitaskPromptLayer.FILE_COLS, 3);
            INDArray rows = tensor(f, file, MultitaskPromptLayer.FILE_ROWS, 3);
            if (prompt.size(0) != p || prompt.size(1) != d) {
                throw new IllegalArgumentException("multitask prompt tuning: " + MultitaskPromptLayer.FILE_PROMPT + " in "
                        + file + " is " + Arrays.toString(prompt.shape()) + ", expected [" + p + ", " + d
                        + "] (numVirtualTokens, the embedding width)");
            }
            if (cols.size(1) != p || rows.size(0) != cols.size(0) || rows.size(1) != cols.size(2) || rows.size(2) != d) {
                throw new IllegalArgumentException("multitask prompt tuning: " + file + " holds "
                        + MultitaskPromptLayer.FILE_COLS + " " + Arrays.toString(cols.shape()) + " and "
                        + MultitaskPromptLayer.FILE_ROWS + " " + Arrays.toString(rows.shape()) + ", expected [S, " + p
                        + ", r] and [S, r, " + d + "]");
            }
            return new Source(prompt, cols, rows);
        }

        private static INDArray tensor(SafetensorsFile f, Path file, String name, int rank) {
            SafeTensor t = f.tensors().get(name);
            if (t == null || t.shape().length != rank) {
                throw new IllegalArgumentException("multitask prompt tuning: " + file + " has " + (t == null ? "no tensor "
                        + name : name + " of shape " + Arrays.toString(t.shape())) + "; a multitask prompt tuning "
                        + "adapter has " + MultitaskPromptLayer.FILE_PROMPT + " [p, d], " + MultitaskPromptLayer.FILE_COLS
                        + " [S, p, r] and " + MultitaskPromptLayer.FILE_ROWS + " [S, r, d]; tensors are "
                        + f.tensors().keySet());
            }
            try {
                return t.toINDArray(DataType.DOUBLE);
            } catch (IllegalStateException e) {
                throw new IllegalArgumentException("multitask prompt tuning: " + name + " in " + file + " has dtype "
                        + t.dtype() + "; F32, F16 or BF16 expected", e);
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MultitaskPromptTuningConfig c && numVirtualTokens == c.numVirtualTokens
                && numTasks == c.numTasks && numRanks == c.numRanks && init == c.init && initTokens.equals(c.initTokens)
                && Objects.equals(initStatePath, c.initStatePath) && initTask == c.initTask
                && embeddingLayer.equals(c.embeddingLayer) && outputLayer.equals(c.outputLayer)
                && taskInput.equals(c.taskInput) && targeting.equals(c.targeting);
    }

    @Override
    public int hashCode() {
        return Objects.hash(numVirtualTokens, numTasks, numRanks, init, initTokens, initStatePath, initTask,
                embeddingLayer, outputLayer, taskInput, targeting);
    }

    @Override
    public String toString() {
        return "MultitaskPromptTuningConfig(numVirtualTokens=" + numVirtualTokens + ", numTasks=" + numTasks
                + ", numRanks=" + numRanks + ", init=" + init + ", initTokens=" + initTokens + ", initStatePath="
                + initStatePath + ", initTask=" + initTask + ", embeddingLayer=" + embeddingLayer + ", outputLayer="
                + outputLayer + ", taskInput=" + taskInput + ", modulesToSave=" + targeting.modulesToSave() + ")";
    }

    /**
     * Builds a {@link MultitaskPromptTuningConfig}; setters validate at once. The shared option
     * (modules to save) comes from {@link ModulesToSaveBuilder}.
     */
    public static final class Builder extends ModulesToSaveBuilder<Builder> {
        private int numVirtualTokens = -1;
        private int numTasks = 1;
        private int numRanks = 1;
        private MultitaskPromptInit init = MultitaskPromptInit.RANDOM;
        private final List<Integer> initTokens = new ArrayList<>();
        private String initStatePath;
        private int initTask;
        private String embeddingLayer = Transformers.TOKEN_EMBEDDING;
        private String outputLayer = Transformers.OUTPUT;
        private String taskInput = DEFAULT_TASK_INPUT;

        private Builder() {
            super(Targeting.Scope.MODULES_TO_SAVE);
        }

        /** {@code p ≥ 1} (required). */
        public Builder numVirtualTokens(int p) {
            if (p < 1) {
                throw new IllegalArgumentException("numVirtualTokens must be positive; got " + p);
            }
            this.numVirtualTokens = p;
            return this;
        }

        /** {@code n ≥ 1} tasks (default 1). */
        public Builder numTasks(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("numTasks must be positive; got " + n);
            }
            this.numTasks = n;
            return this;
        }

        /** {@code r ≥ 1}, the rank of the task factors (default 1, as PEFT and the paper). */
        public Builder numRanks(int r) {
            if (r < 1) {
                throw new IllegalArgumentException("numRanks must be positive; got " + r);
            }
            this.numRanks = r;
            return this;
        }

        /** {@link MultitaskPromptInit#RANDOM} (the default). */
        public Builder initRandom() {
            setInit(MultitaskPromptInit.RANDOM, null, 0);
            return this;
        }

        /** {@link MultitaskPromptInit#TEXT}: the base embedding rows of these token ids, repeated to fill {@code p}. */
        public Builder initFromTokens(int... tokenIds) {
            Objects.requireNonNull(tokenIds, "tokenIds must not be null");
            if (tokenIds.length == 0) {
                throw new IllegalArgumentException("initFromTokens: give at least one token id");
            }
            for (int id : tokenIds) {
                if (id < 0) {
                    throw new IllegalArgumentException("initFromTokens: token ids must not be negative; got "
                            + Arrays.toString(tokenIds));
                }
            }
            setInit(MultitaskPromptInit.TEXT, null, 0);
            for (int id : tokenIds) {
                initTokens.add(id);
            }
            return this;
        }

        /** {@link MultitaskPromptInit#AVERAGE_SOURCE_TASKS} from a source adapter's {@code adapter_model.safetensors}. */
        public Builder initFromAverageOfSourceTasks(Path sourceWeights) {
            setInit(MultitaskPromptInit.AVERAGE_SOURCE_TASKS, sourceWeights, 0);
            return this;
        }

        /** {@link MultitaskPromptInit#EXACT_SOURCE_TASK}: source task {@code task}'s factors. */
        public Builder initFromSourceTask(Path sourceWeights, int task) {
            if (task < 0) {
                throw new IllegalArgumentException("initFromSourceTask: the source task must not be negative; got " + task);
            }
            setInit(MultitaskPromptInit.EXACT_SOURCE_TASK, sourceWeights, task);
            return this;
        }

        /** {@link MultitaskPromptInit#ONLY_SOURCE_SHARED}: the source's shared prompt, fresh task factors. */
        public Builder initFromSourceShared(Path sourceWeights) {
            setInit(MultitaskPromptInit.ONLY_SOURCE_SHARED, sourceWeights, 0);
            return this;
        }

        private void setInit(MultitaskPromptInit kind, Path source, int task) {
            if (kind.readsSource()) {
                Objects.requireNonNull(source, kind + " needs the source adapter's weights file; got null");
            }
            this.init = kind;
            this.initTokens.clear();
            this.initStatePath = source == null ? null : source.toString();
            this.initTask = task;
        }

        /** The embedding layer the prompts follow (default {@code embed.tokens}). */
        public Builder embeddingLayer(String name) {
            this.embeddingLayer = requireName(name, "embeddingLayer");
            return this;
        }

        /** The output layer before which the virtual positions are dropped (default {@code head}). */
        public Builder outputLayer(String name) {
            this.outputLayer = requireName(name, "outputLayer");
            return this;
        }

        /** The name of the task-id input the wrapped graph gains (default {@code task_ids}). */
        public Builder taskInput(String name) {
            this.taskInput = requireName(name, "taskInput");
            return this;
        }

        private static String requireName(String name, String what) {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException(what + " must not be null or blank");
            }
            return name;
        }

        /**
         * @throws IllegalStateException if numVirtualTokens was not set, or a source init that copies
         *     task factors ({@code AVERAGE_SOURCE_TASKS}, {@code EXACT_SOURCE_TASK}) is asked of more
         *     than one task (PEFT loads them into a single task)
         */
        public MultitaskPromptTuningConfig build() {
            if (numVirtualTokens < 1) {
                throw new IllegalStateException("numVirtualTokens must be set (1 or more)");
            }
            if ((init == MultitaskPromptInit.AVERAGE_SOURCE_TASKS || init == MultitaskPromptInit.EXACT_SOURCE_TASK)
                    && numTasks != 1) {
                throw new IllegalStateException(init + " starts one target task from the source's factors; numTasks is "
                        + numTasks + ": use numTasks(1), or initFromSourceShared for several new tasks");
            }
            return new MultitaskPromptTuningConfig(this, buildTargeting());
        }
    }
}
