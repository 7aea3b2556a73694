package org.peft4j.core;

import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A layer configuration that carries adapter parameters and knows how they are written to an
 * adapter file. Implemented by {@link FrozenDenseLayer} (LoRA, IA3 and the trained bias of frozen
 * dense layers) and by tuners that add layers of their own (bottleneck adapters, prompt and
 * prefix tuning).
 *
 * <p>Two kinds of tensors: {@link #savedTensors()} belong to this layer alone and are named
 * {@code base_model.model.<baseLayerName>.<suffix>}; {@link #sharedBlocks()} are this layer's
 * columns of a tensor of the whole model, named as Hugging Face PEFT names it for prompt learning
 * ({@code prompt_embeddings}), to which several layers contribute.
 *
 * <p>Thread-safety: as the implementing configuration.
 */
public interface AdapterLayer {

    /** The base model's name for the layer the tensors belong to. */
    String baseLayerName();

    /** The trainable parameters written to the adapter file, with their file names. */
    List<FrozenDenseLayer.SavedTensor> savedTensors();

    /** This layer's blocks of model-level tensors (default: none). */
    default List<SharedBlock> sharedBlocks() {
        return List.of();
    }

    /**
     * The value of a block that is computed rather than held by a parameter
     * ({@link SharedBlock#paramKey()} null), {@code [rows, columns]} in file orientation.
     *
     * @param params this layer's parameter table
     * @throws UnsupportedOperationException if this layer declares no computed block
     */
    default INDArray sharedBlockValue(SharedBlock block, Map<String, INDArray> params) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " declares no computed block; got " + block);
    }

    /**
     * Columns {@code [columnOffset, columnOffset + columns)} of the model-level tensor
     * {@code fileName} of shape {@code fileShape = [rows, total]}. The blocks of all layers must
     * tile the tensor's columns exactly. A tensor of higher rank {@code [n1, …, nk, total]} (as
     * multitask prompt tuning's {@code prefix_task_cols [tasks, p, r]}) is read as the matrix
     * {@code [n1·…·nk, total]} of its rows in row-major order ({@link #rows()}).
     *
     * @param fileName the tensor's full name in the file (no {@code base_model.model.} prefix)
     * @param paramKey the parameter stored there, held transposed ({@code [columns, rows]}) by the
     *     layer; null when the block is computed from other parameters
     *     ({@link #sharedBlockValue}): then it is written for readers of the file but never read
     *     back
     */
    record SharedBlock(String fileName, long[] fileShape, long columnOffset, long columns, String paramKey) {

        public SharedBlock {
            if (fileShape.length < 2 || columnOffset < 0 || columns <= 0
                    || columnOffset + columns > fileShape[fileShape.length - 1]) {
                throw new IllegalArgumentException("block of " + fileName + ": columns [" + columnOffset + ", "
                        + (columnOffset + columns) + ") do not fit shape " + java.util.Arrays.toString(fileShape));
            }
            fileShape = fileShape.clone();
        }

        @Override
        public long[] fileShape() {
            return fileShape.clone();
        }

        /** The rows of the tensor read as a matrix: the product of every dimension but the last. */
        public long rows() {
            long r = 1;
            for (int i = 0; i < fileShape.length - 1; i++) {
                r = Math.multiplyExact(r, fileShape[i]);
            }
            return r;
        }

        /** The columns of the whole tensor: its last dimension. */
        public long width() {
            return fileShape[fileShape.length - 1];
        }

        @Override
        public String toString() {
            return fileName + java.util.Arrays.toString(fileShape) + "[:, " + columnOffset + ":" + (columnOffset + columns)
                    + "] <- " + (paramKey == null ? "computed" : paramKey + "ᵀ");
        }
    }
}
