package org.peft4j.examples;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Held-out bits per character of a model limited to a context of {@code W} characters, on windows
 * longer than {@code W}: every position {@code t} is predicted from the {@code min(t + 1, W)}
 * characters ending at it, exactly (one forward pass of the first {@code W} characters for
 * positions {@code t < W}, and one sub-window of {@code W} ending at {@code t} for each later
 * position, all of a window batched together).
 *
 * <p>Thread-safety: stateless; the graph is only read.
 */
final class SlidingWindow {

    private SlidingWindow() {
    }

    static double bitsPerChar(ComputationGraph g, List<DataSet> batches, int w) {
        double nll = 0;
        long count = 0;
        for (DataSet ds : batches) {
            INDArray x = ds.getFeatures();
            INDArray y = ds.getLabels();
            long t = x.size(1);
            for (long b = 0; b < x.size(0); b++) {
                INDArray tokens = x.getRow(b);
                int subs = (int) Math.max(0, t - w);
                INDArray in = Nd4j.create(x.dataType(), 1 + subs, Math.min(w, t));
                in.getRow(0).assign(tokens.get(NDArrayIndex.interval(0, Math.min(w, t))));
                for (int s = 0; s < subs; s++) {
                    in.getRow(s + 1).assign(tokens.get(NDArrayIndex.interval(s + 1, s + 1 + w)));
                }
                g.clear();
                INDArray p = g.outputSingle(false, in).castTo(DataType.DOUBLE);
                for (long pos = 0; pos < t; pos++) {
                    int label = (int) y.getDouble(b, 0, pos);
                    double prob = pos < w ? p.getDouble(0, label, pos) : p.getDouble(pos - w + 1, label, w - 1);
                    nll -= Math.log(prob + 1e-30);
                    count++;
                }
            }
        }
        return nll / count / Math.log(2);
    }
}
