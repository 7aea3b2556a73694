package org.peft4j.lora;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * DoRA's weight-level arithmetic for initialising the magnitude and merging, on a weight
 * {@code V [K, nOut]} whose columns are the output features (a dense weight, an embedding table, a
 * convolution kernel flattened and transposed): the norms are taken in double precision.
 *
 * <p>Thread-safety: stateless.
 */
final class DoraWeights {

    private DoraWeights() {
    }

    /** {@code ‖V[:, j]‖} per column, {@code [nOut]}, double. */
    static INDArray columnNorms(INDArray v) {
        INDArray d = v.castTo(DataType.DOUBLE);
        return Transforms.sqrt(d.mul(d).sum(0), false);
    }

    /** {@code V ⊙ (m / ‖V‖)} per column, in {@code v}'s data type: DoRA's merged weight. */
    static INDArray rescaleColumns(INDArray v, INDArray magnitude) {
        INDArray c = magnitude.castTo(DataType.DOUBLE).reshape(1, v.size(1)).div(columnNorms(v).reshape(1, v.size(1)));
        return v.castTo(DataType.DOUBLE).mulRowVector(c).castTo(v.dataType());
    }

    /** {@code V ⊙ (m / ‖V‖)} per row of {@code v [nOut, K]} (a convolution kernel flattened per output channel). */
    static INDArray rescaleRows(INDArray v, INDArray magnitude) {
        return rescaleColumns(v.transpose(), magnitude).transpose();
    }
}
