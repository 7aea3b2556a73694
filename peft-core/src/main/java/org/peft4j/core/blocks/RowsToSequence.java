package org.peft4j.core.blocks;

import org.deeplearning4j.nn.conf.RNNFormat;
import org.deeplearning4j.nn.conf.preprocessor.FeedForwardToRnnPreProcessor;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.blocks.internal.RowKernels;

/**
 * DL4J's {@link FeedForwardToRnnPreProcessor} (time-distributed rows {@code [b·T, d]}, row
 * {@code b + B·t}, back to a sequence {@code [b, d, T]}) with the same results, whose copies run on
 * the host buffers for float32 {@code 'c'}-ordered arrays in the {@code NCW} format: the rows into the
 * column-major buffer the sequence is a view of ({@link RowKernels#rowsToColumns}), and the
 * sequence's gradient ({@code 'c'}-ordered, or {@code 'f'}-ordered as DL4J's masked pooling passes
 * it) straight into {@code 'c'}-ordered rows ({@link RowKernels#sequenceToRows}), where the
 * superclass returns {@code 'f'}-ordered rows that a row kernel then copies again.
 *
 * <p>Why: the encoder builders end with this step ({@link Transformers#SEQUENCE}); ND4J's
 * order-changing copies of it took 1.4 % of a head-only training step and 1.2 % of a LoRA step of a
 * MiniLM-sized encoder at one thread (8 × 64 tokens). Other types, orders, formats and backends use
 * the superclass unchanged.
 *
 * <p>Thread-safety: immutable after construction (the format is only set by deserialization);
 * the methods keep no state.
 */
public class RowsToSequence extends FeedForwardToRnnPreProcessor {
    private static final long serialVersionUID = 1L;

    /** The {@code NCW} sequence format ({@code [b, d, T]}). */
    public RowsToSequence() {
        super(RNNFormat.NCW);
    }

    /** The given sequence format ({@code NCW} takes the host copies; {@code NWC} is the superclass's). */
    public RowsToSequence(RNNFormat format) {
        super(format);
    }

    @Override
    public INDArray preProcess(INDArray input, int miniBatchSize, LayerWorkspaceMgr workspaceMgr) {
        if (getRnnDataFormat() == RNNFormat.NCW && input.rank() == 2 && input.ordering() == 'c'
                && miniBatchSize > 0 && input.size(0) % miniBatchSize == 0) {
            INDArray columns = workspaceMgr.createUninitialized(ArrayType.ACTIVATIONS, input.dataType(), input.shape(),
                    'f');
            if (RowKernels.rowsToColumns(input, columns)) {
                INDArray sequence = columns.reshape('f', miniBatchSize, input.size(0) / miniBatchSize, input.size(1))
                        .permute(0, 2, 1);
                return workspaceMgr.leverageTo(ArrayType.ACTIVATIONS, sequence);
            }
        }
        return super.preProcess(input, miniBatchSize, workspaceMgr);
    }

    @Override
    public INDArray backprop(INDArray output, int miniBatchSize, LayerWorkspaceMgr workspaceMgr) {
        if (getRnnDataFormat() == RNNFormat.NCW && output.rank() == 3) {
            INDArray rows = workspaceMgr.createUninitialized(ArrayType.ACTIVATION_GRAD, output.dataType(),
                    new long[] {output.size(0) * output.size(2), output.size(1)}, 'c');
            if (RowKernels.sequenceToRows(output, rows)) {
                return rows;
            }
        }
        return super.backprop(output, miniBatchSize, workspaceMgr);
    }

    @Override
    public RowsToSequence clone() {
        return new RowsToSequence(getRnnDataFormat());
    }
}
