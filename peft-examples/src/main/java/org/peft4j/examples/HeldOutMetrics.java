package org.peft4j.examples;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.evaluation.EvaluationAveraging;
import org.nd4j.evaluation.classification.Evaluation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Held-out quality of a character model: mean cross-entropy per character (nats), bits per
 * character, and next-character prediction scored as classification (top-1 over the vocabulary)
 * with DL4J's {@link Evaluation}: accuracy and macro-averaged precision, recall and F1.
 *
 * @param loss mean negative log-likelihood per character, in nats
 * @param accuracy top-1 next-character accuracy
 * @param precision macro-averaged precision over the characters
 * @param recall macro-averaged recall
 * @param f1 macro-averaged F1
 */
record HeldOutMetrics(double loss, double accuracy, double precision, double recall, double f1) {

    /** Bits per character: {@code loss / ln 2}. */
    double bitsPerChar() {
        return loss / Math.log(2);
    }

    /** Scores {@code graph} on fixed batches; the graph is only read. */
    static HeldOutMetrics of(ComputationGraph graph, List<DataSet> batches, int vocabSize) {
        Evaluation eval = new Evaluation(vocabSize);
        double nll = 0;
        long count = 0;
        for (DataSet ds : batches) {
            graph.clear(); // DL4J's batchSize() would otherwise prefer the labels of the last fit
            INDArray out = graph.outputSingle(false, ds.getFeatures()).castTo(DataType.DOUBLE);
            INDArray labels = oneHot(ds.getLabels(), vocabSize);
            nll -= Transforms.log(out.add(1e-30), false).muli(labels).sumNumber().doubleValue();
            count += labels.size(0) * labels.size(2);
            eval.evalTimeSeries(labels.castTo(DataType.FLOAT), out.castTo(DataType.FLOAT));
        }
        return new HeldOutMetrics(nll / count, eval.accuracy(), eval.precision(EvaluationAveraging.Macro),
                eval.recall(EvaluationAveraging.Macro), eval.f1(EvaluationAveraging.Macro));
    }

    /** Sparse labels {@code [batch, 1, time]} of class ids as one-hot {@code [batch, classes, time]}. */
    static INDArray oneHot(INDArray sparse, int classes) {
        long batch = sparse.size(0);
        long time = sparse.size(2);
        INDArray out = org.nd4j.linalg.factory.Nd4j.zeros(DataType.DOUBLE, batch, classes, time);
        for (long b = 0; b < batch; b++) {
            for (long t = 0; t < time; t++) {
                out.putScalar(new long[] {b, (long) sparse.getDouble(b, 0, t), t}, 1.0);
            }
        }
        return out;
    }
}
