package org.peft4j.core.blocks;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.graph.LayerVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Extends a model's context by position interpolation (Chen et al., arXiv 2306.15595; the context
 * extension LongLoRA fine-tunes, arXiv 2309.12307): position {@code m} of the new, longer context
 * {@code L'} is given the encoding the model learned for position {@code m·L/L'} of its trained
 * context {@code L}, so every position the model meets stays inside the range it was trained on
 * and only its resolution changes. Fine-tuning at the new length then adapts the model to the
 * denser positions.
 *
 * <p>For a learned table ({@link PositionalEmbedding} {@code W}, the scheme of
 * {@link Transformers}' decoder and encoder) the new table {@code W' [L', d]} samples the trained
 * rows {@code W[0 … L−1]} linearly:
 * <pre>
 *   x = m·L/L'                    (m = 0 … L'−1; clamped to L−1 past the last trained row)
 *   W'[m] = (1 − f)·W[i] + f·W[i + 1]      i = ⌊x⌋, f = x − i   (W'[m] = W[L−1] when i = L−1)
 * </pre>
 * so {@code W'[m·L'/L] = W[m]} whenever {@code m·L'/L} is a whole number. Rows of the base table
 * past {@code L} (never trained at length {@code L}, e.g. room left for prompt tuning) are not
 * used. A rotary or other computed scheme would scale its position argument by {@code L/L'}
 * instead; the blocks have none today, so a graph with no learned positional table is refused.
 *
 * <p>Thread-safety: stateless; the base graph is only read.
 */
public final class PositionInterpolation {

    private PositionInterpolation() {
    }

    /**
     * The interpolated table {@code W' [newLength, d]} of the first {@code trainedLength} rows of
     * {@code table [rows, d]} (formula in the class javadoc), in {@code table}'s data type.
     *
     * @throws IllegalArgumentException if {@code table} is not 2-D, {@code trainedLength} is not in
     *     {@code [1, rows]}, or {@code newLength < trainedLength}
     */
    public static INDArray interpolate(INDArray table, long trainedLength, long newLength) {
        Objects.requireNonNull(table, "table must not be null");
        if (table.rank() != 2) {
            throw new IllegalArgumentException("position table must be [positions, d]; got shape "
                    + java.util.Arrays.toString(table.shape()));
        }
        if (trainedLength < 1 || trainedLength > table.size(0)) {
            throw new IllegalArgumentException("trainedLength must be in [1, " + table.size(0) + "] (the table's rows); got "
                    + trainedLength);
        }
        if (newLength < trainedLength) {
            throw new IllegalArgumentException("newLength " + newLength + " must not be shorter than trainedLength "
                    + trainedLength + ": interpolation extends a context");
        }
        long d = table.size(1);
        double[] w = table.castTo(DataType.DOUBLE).dup('c').data().asDouble();
        double[] out = new double[Math.toIntExact(Math.multiplyExact(newLength, d))];
        for (long m = 0; m < newLength; m++) {
            double x = Math.min((double) m * trainedLength / newLength, trainedLength - 1);
            long i = (long) Math.floor(x);
            double f = x - i;
            for (long j = 0; j < d; j++) {
                double lo = w[(int) (i * d + j)];
                double hi = i + 1 < trainedLength ? w[(int) ((i + 1) * d + j)] : lo;
                out[(int) (m * d + j)] = f == 0 ? lo : (1 - f) * lo + f * hi;
            }
        }
        return Nd4j.createFromArray(out).reshape('c', newLength, d).castTo(table.dataType());
    }

    /**
     * A new graph equal to {@code base} except that every {@link PositionalEmbedding} covers
     * {@code newLength} positions, interpolated from the first {@code trainedLength} rows of its
     * table. Every other parameter is copied; {@code base} is not changed.
     *
     * @param trainedLength the context the base was trained at ({@code L})
     * @param newLength the context to extend to ({@code L'})
     * @throws IllegalArgumentException if {@code base} has no positional table, or a length is out
     *     of range for one (the message names the layer)
     */
    public static ComputationGraph extend(ComputationGraph base, long trainedLength, long newLength) {
        Objects.requireNonNull(base, "base must not be null");
        if (newLength < trainedLength) {
            throw new IllegalArgumentException("newLength " + newLength + " must not be shorter than trainedLength "
                    + trainedLength + ": interpolation extends a context");
        }
        ComputationGraphConfiguration conf = ComputationGraphConfiguration.fromJson(base.getConfiguration().toJson());
        List<String> tables = new ArrayList<>();
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            if (e.getValue() instanceof LayerVertex lv && lv.getLayerConf().getLayer() instanceof PositionalEmbedding p) {
                if (trainedLength < 1 || trainedLength > p.maxLength()) {
                    throw new IllegalArgumentException("layer \"" + e.getKey() + "\" holds " + p.maxLength()
                            + " positions; trainedLength must be in [1, " + p.maxLength() + "], got " + trainedLength);
                }
                PositionalEmbedding longer = new PositionalEmbedding(newLength, p.getNOut(), p.initStd(), p.isRowsOutput());
                longer.setLayerName(p.getLayerName());
                copyTraining(p, longer);
                lv.getLayerConf().setLayer(longer);
                tables.add(e.getKey());
            }
        }
        if (tables.isEmpty()) {
            StringBuilder layers = new StringBuilder();
            conf.getVertices().forEach((k, v) -> layers.append(layers.length() == 0 ? "" : ", ").append(k).append(" (")
                    .append(v instanceof LayerVertex lv ? lv.getLayerConf().getLayer().getClass().getSimpleName()
                            : v.getClass().getSimpleName()).append(')'));
            throw new IllegalArgumentException("no positional table (PositionalEmbedding) to extend; layers are: " + layers);
        }
        ComputationGraph out = new ComputationGraph(conf);
        out.init();
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            for (org.deeplearning4j.nn.api.Layer l : base.getLayers()) {
                String name = l.conf().getLayer().getLayerName();
                if (l.numParams() == 0) {
                    continue;
                }
                org.deeplearning4j.nn.api.Layer target = out.getLayer(name);
                if (tables.contains(name)) {
                    INDArray w = l.getParam(PositionalEmbedding.WEIGHT_KEY);
                    target.getParam(PositionalEmbedding.WEIGHT_KEY).assign(interpolate(w, trainedLength, newLength));
                } else {
                    target.params().assign(l.params());
                }
            }
        }
        return out;
    }

    private static void copyTraining(Layer from, Layer to) {
        if (from instanceof org.deeplearning4j.nn.conf.layers.BaseLayer f
                && to instanceof org.deeplearning4j.nn.conf.layers.BaseLayer t) {
            t.setIUpdater(f.getIUpdater() == null ? null : f.getIUpdater().clone());
            t.setBiasUpdater(f.getBiasUpdater() == null ? null : f.getBiasUpdater().clone());
            t.setRegularization(f.getRegularization());
            t.setRegularizationBias(f.getRegularizationBias());
            t.setWeightInitFn(f.getWeightInitFn());
            t.setGradientNormalization(f.getGradientNormalization());
            t.setGradientNormalizationThreshold(f.getGradientNormalizationThreshold());
        }
    }
}
