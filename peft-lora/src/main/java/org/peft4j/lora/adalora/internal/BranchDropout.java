package org.peft4j.lora.adalora.internal;

import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.random.impl.BernoulliDistribution;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The inverted-dropout mask of an AdaLoRA branch's input ({@code lora_dropout}): drawn by a
 * training forward pass, kept (outside workspaces) for the backward pass that follows, which may
 * compute the forward pass again and must see the same mask.
 *
 * <p>Thread-safety: one instance is used by one layer, by one thread at a time.
 */
final class BranchDropout {
    private INDArray mask;
    private boolean pinned;

    /**
     * The mask for an input of {@code shape} ({@code keep / (1 − p)} per element), or null without
     * dropout (not training, or {@code p = 0}). With {@code fresh} (a training forward pass) a new
     * mask is drawn unless pinned; otherwise the last one is reused.
     */
    INDArray mask(double p, long[] shape, DataType dt, boolean training, boolean fresh) {
        if (!training || p == 0.0) {
            return null;
        }
        if ((fresh && !pinned) || mask == null || !Arrays.equals(mask.shape(), shape) || mask.dataType() != dt) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                INDArray m = Nd4j.createUninitialized(dt, shape);
                Nd4j.getExecutioner().exec(new BernoulliDistribution(m, 1.0 - p));
                mask = m.muli(1.0 / (1.0 - p));
            }
        }
        return mask;
    }

    /** Keeps the next mask for every later pass (true), so that a training pass is deterministic, or not. */
    void pin(boolean pin) {
        pinned = pin;
        if (!pin) {
            mask = null;
        }
    }

    /** After a backward pass: forgets the mask unless pinned. */
    void release() {
        if (!pinned) {
            mask = null;
        }
    }
}
