package org.peft4j.core.rlhf.internal;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One inference-mode forward pass of a graph on a {@link TokenBatch}, with its next-token
 * probabilities and scalar output copied into Java arrays: {@code lm[(i·vocab + v)·time + t]} is
 * the probability of token {@code v} after position {@code t} of row {@code i};
 * {@code score[i·time + t]} (per position) or {@code score[i]} (pooled) the scalar head. It also
 * keeps every output's shape, so that gradients for all outputs can be laid out
 * ({@link #gradients}).
 *
 * <p>Thread-safety: immutable after construction; {@link #run} uses the graph (one thread per graph).
 *
 * @param info the model description the pass was run with
 * @param batch the rows run
 * @param lm next-token probabilities, or null when not asked for
 * @param vocab size of the vocabulary dimension of {@code lm} (0 when not asked for)
 * @param score the scalar output, or null when not asked for
 * @param shapes the shape of every graph output, in output order
 */
public record GraphOutputs(ModelInfo info, TokenBatch batch, double[] lm, int vocab, double[] score,
                           List<long[]> shapes) {

    /** Runs {@code g} (inference mode, feature mask on) and keeps the outputs asked for. */
    public static GraphOutputs run(ComputationGraph g, TokenBatch batch, ModelInfo info, boolean lm, boolean score) {
        if (lm) {
            info.requireLanguageModel("a forward pass");
        }
        if (score) {
            info.requireScore("a forward pass");
        }
        DataType dt = info.dataType();
        g.clear(); // ComputationGraph.batchSize() would otherwise prefer the labels of the last fit
        INDArray[] out = g.output(false, new INDArray[] {batch.ids(dt)}, new INDArray[] {batch.mask(dt)});
        g.clear();
        List<long[]> shapes = Arrays.stream(out).map(INDArray::shape).toList();
        double[] lmv = null;
        int vocab = 0;
        double[] sv = null;
        if (lm) {
            INDArray p = out[info.outputs().indexOf(info.heads().languageModel())];
            if (p.rank() != 3 || p.size(0) != batch.size() || p.size(2) != batch.time()) {
                throw new IllegalArgumentException("the next-token output \"" + info.heads().languageModel()
                        + "\" has shape " + Arrays.toString(p.shape()) + "; expected [batch " + batch.size()
                        + ", vocab, time " + batch.time() + "] (a softmax per position, NCW)");
            }
            vocab = Math.toIntExact(p.size(1));
            lmv = toDoubles(p);
        }
        if (score) {
            INDArray s = out[info.outputs().indexOf(info.heads().score())];
            long expected = info.scorePerToken() ? (long) batch.size() * batch.time() : batch.size();
            if (s.length() != expected || s.size(0) != batch.size() || s.size(1) != 1) {
                throw new IllegalArgumentException("the scalar output \"" + info.heads().score() + "\" has shape "
                        + Arrays.toString(s.shape()) + "; expected [batch, 1" + (info.scorePerToken()
                        ? ", time]" : "]") + " (see ScoreHead)");
            }
            sv = toDoubles(s);
        }
        return new GraphOutputs(info, batch, lmv, vocab, sv, shapes);
    }

    private static double[] toDoubles(INDArray a) {
        return a.castTo(DataType.DOUBLE).dup('c').reshape(a.length()).toDoubleVector();
    }

    /** Time dimension of the arrays. */
    public int time() {
        return batch.time();
    }

    /** The scalar output of row {@code i} at position {@code t} (per-position heads) or pooled. */
    public double score(int i, int t) {
        return info.scorePerToken() ? score[i * batch.time() + t] : score[i];
    }

    /** The reward of row {@code i}: the scalar output at its last real token, or the pooled value. */
    public double sequenceScore(int i) {
        return score(i, batch.length(i) - 1);
    }

    /** Index into {@link #score} of row {@code i}, position {@code t}. */
    public int scoreIndex(int i, int t) {
        return info.scorePerToken() ? i * batch.time() + t : i;
    }

    /** Output position that predicts response token {@code j} of row {@code i}. */
    public int responsePosition(int i, int j) {
        return batch.promptLength(i) - 1 + j;
    }

    /**
     * The sampling distribution of row {@code i} before its response token {@code j}, at
     * {@code temperature} over {@code support} (null: the whole vocabulary).
     */
    public TokenDistribution distribution(int i, int j, double temperature, int[] support) {
        return TokenDistribution.at(lm, vocab, batch.time(), i, responsePosition(i, j), temperature, support,
                info.probabilityFloor());
    }

    /** {@code log π(y_ij)} for every response token of row {@code i} (temperature 1, whole vocabulary). */
    public double[] responseLogProbs(int i) {
        double[] lp = new double[batch.responseLength(i)];
        for (int j = 0; j < lp.length; j++) {
            lp[j] = distribution(i, j, 1.0, null).logProb(responseToken(i, j));
        }
        return lp;
    }

    /** {@code log π(y_i | x_i)}: the sum of {@link #responseLogProbs}. */
    public double sequenceLogProb(int i) {
        double s = 0;
        for (double v : responseLogProbs(i)) {
            s += v;
        }
        return s;
    }

    /** Response token {@code j} of row {@code i}. */
    public int responseToken(int i, int j) {
        return batch.token(i, batch.promptLength(i) + j);
    }

    /**
     * Adds {@code coef · ∂ log π(y_i | x_i) / ∂z} (temperature 1, whole vocabulary) to the
     * next-token gradient {@code grad} ({@link #lm} layout).
     */
    public void addSequenceLogProbGradient(double[] grad, int i, double coef) {
        for (int j = 0; j < batch.responseLength(i); j++) {
            distribution(i, j, 1.0, null).addLogProbGradient(grad, vocab, batch.time(), i, responsePosition(i, j),
                    responseToken(i, j), coef, 1.0);
        }
    }

    /** A zero gradient for the next-token output, in {@link #lm} layout. */
    public double[] zeroLanguageModelGradient() {
        return new double[batch.size() * vocab * batch.time()];
    }

    /** A zero gradient for the scalar output, in {@link #score} layout. */
    public double[] zeroScoreGradient() {
        return new double[info.scorePerToken() ? batch.size() * batch.time() : batch.size()];
    }

    /**
     * {@code dL/dz} for every graph output, in output order, as arrays of the network's data type:
     * the given gradients (by output name, in this class's layouts), zeros for the others.
     */
    public INDArray[] gradients(Map<String, double[]> byOutput) {
        INDArray[] g = new INDArray[shapes.size()];
        for (int k = 0; k < g.length; k++) {
            double[] v = byOutput.get(info.outputs().get(k));
            long[] shape = shapes.get(k);
            g[k] = (v == null ? Nd4j.zeros(DataType.DOUBLE, shape) : Nd4j.create(v, shape, 'c'))
                    .castTo(info.dataType());
        }
        return g;
    }
}
