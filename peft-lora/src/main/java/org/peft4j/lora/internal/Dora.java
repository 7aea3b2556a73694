package org.peft4j.lora.internal;

import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * DoRA's terms of one pass (arXiv 2402.09353), shared by the LoRA implementations of every target
 * kind. In the row form of {@link org.peft4j.core.spi.FrozenLayerImpl}, with the frozen weight as
 * {@code W [K, nOut]} (a dense weight, an embedding table, a convolution's kernel flattened per
 * output channel and transposed) and the factors as {@code A [K, r]}, {@code B [r, nOut]}:
 * <pre>
 *   V = W + s·A·B      n_j = ‖V[:, j]‖ (detached)      c = m / n
 *   z = b + c ⊙ (x·W + s·(d(x)·A)·B)                          without dropout
 *   z = b + x·W + (c − 1) ⊙ (d(x)·W) + c ⊙ s·(d(x)·A)·B     with dropout (PEFT's form)
 *   dL/dm_j = Σ_rows δ_j · (d(x)·V)_j / n_j
 * </pre>
 * The gradients of the LoRA factors are LoRA's with {@code δ ⊙ c} in place of {@code δ}; the norm is
 * a constant in the backward pass, as the paper's §4.3 and PEFT's {@code weight_norm.detach()} have it.
 *
 * <p>The norm is computed without forming {@code V}:
 * {@code n_j² = ‖W_j‖² + 2s·Σ_k B_kj·P_kj + s²·Σ_k B_kj·(G·B)_kj} with {@code P = Aᵀ·W [r, nOut]} and
 * {@code G = Aᵀ·A [r, r]}. {@code W} is frozen, so {@code ‖W_j‖²} is computed once; a pass costs
 * one {@code [r, K]·[K, nOut]} product and no {@code [K, nOut]} temporary, and a 4-bit base (QLoRA)
 * computes {@code P} with its fused kernel instead of dequantizing every pass. The small terms are
 * summed in double precision.
 *
 * <p>A test hook pins the norm to a fixed value ({@link #pin}), so that finite differences, which
 * move the norm when they perturb {@code A} and {@code B}, see the function the detached backward
 * differentiates.
 *
 * <p>Thread-safety: one instance belongs to one layer implementation, used by one thread at a time.
 */
final class Dora {
    private double[] weightSquares;
    private INDArray pinned;
    private INDArray norm;
    private INDArray scale;
    private INDArray product;

    /** {@code ‖W_j‖²} per output feature, computed from {@code w [K, nOut]} on the first call only. */
    double[] weightSquares(java.util.function.Supplier<INDArray> w) {
        if (weightSquares == null) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                INDArray d = w.get().castTo(DataType.DOUBLE);
                weightSquares = d.mul(d).sum(0).toDoubleVector();
            }
        }
        return weightSquares;
    }

    /**
     * {@code n [nOut]} from {@code ‖W_j‖²}, {@code P = Aᵀ·W [r, nOut]}, {@code G = Aᵀ·A [r, r]} and
     * {@code B [r, nOut]}, in {@code dataType}.
     */
    static INDArray norm(double[] weightSquares, INDArray p, INDArray g, INDArray b, double s, DataType dataType) {
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            INDArray bd = b.castTo(DataType.DOUBLE);
            INDArray cross = bd.mul(p.castTo(DataType.DOUBLE)).sum(0);
            INDArray quad = bd.mul(g.castTo(DataType.DOUBLE).mmul(bd)).sum(0);
            double[] cr = cross.toDoubleVector();
            double[] q = quad.toDoubleVector();
            double[] n = new double[weightSquares.length];
            for (int j = 0; j < n.length; j++) {
                n[j] = Math.sqrt(Math.max(0.0, weightSquares[j] + 2 * s * cr[j] + s * s * q[j]));
            }
            return Nd4j.createFromArray(n).castTo(dataType);
        }
    }

    /** The pinned norm, or null. */
    INDArray pinned() {
        return pinned;
    }

    /** Pins the norm to {@code n} for every later pass (a copy), or unpins with null. */
    void pin(INDArray n) {
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            pinned = n == null ? null : n.dup().reshape(n.length());
        }
    }

    /** Sets this pass's norm {@code n [nOut]} and scale {@code c = m / n}. */
    void start(INDArray n, INDArray magnitude, DataType dataType) {
        try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
            norm = n.castTo(dataType).reshape(1, n.length());
            scale = magnitude.castTo(dataType).reshape(1, n.length()).div(norm);
        }
    }

    /** {@code c = m / n} of this pass, {@code [1, nOut]}. */
    INDArray scale() {
        return scale;
    }

    /**
     * Without dropout: {@code z} holds {@code x·W + b} on entry and {@code b + c ⊙ (x·W + u)} on
     * return, {@code u = s·(x·A)·B}. Keeps {@code x·V = x·W + u} for the backward pass when
     * {@code forBackprop}.
     */
    void applyUndropped(INDArray z, INDArray bias, INDArray u, boolean forBackprop, LayerWorkspaceMgr mgr) {
        if (bias != null) {
            z.subiRowVector(bias);
        }
        z.addi(u);
        if (forBackprop) {
            product = mgr.dup(ArrayType.BP_WORKING_MEM, z);
        }
        z.muliRowVector(scale);
        if (bias != null) {
            z.addiRowVector(bias);
        }
    }

    /**
     * With dropout: {@code z} holds {@code x·W + b} on entry and {@code z + (c − 1) ⊙ xdW + c ⊙ u}
     * on return, {@code xdW = d(x)·W}, {@code u = s·(d(x)·A)·B}. Keeps {@code d(x)·V = xdW + u} for
     * the backward pass when {@code forBackprop}.
     */
    void applyDropped(INDArray z, INDArray xdW, INDArray u, boolean forBackprop, LayerWorkspaceMgr mgr) {
        INDArray xdV = xdW.add(u);
        if (forBackprop) {
            product = mgr.dup(ArrayType.BP_WORKING_MEM, xdV);
        }
        z.addi(xdV.muliRowVector(scale)).subi(xdW);
    }

    /** {@code δ ⊙ c}, a new array. */
    INDArray scaled(INDArray delta) {
        return delta.mulRowVector(scale);
    }

    /** {@code (c − 1) ⊙ δ}, a new array. */
    INDArray scaledMinusOne(INDArray delta) {
        return delta.mulRowVector(scale.sub(1.0));
    }

    /**
     * Writes {@code dL/dm_j = Σ_rows δ_j · (d(x)·V)_j / n_j} into {@code gradient [nOut]}, with the
     * product kept by the backward pass's forward.
     */
    void magnitudeGradient(INDArray delta, INDArray gradient) {
        if (product == null) {
            throw new IllegalStateException("DoRA's backward pass needs the forward pass it recomputes; none ran");
        }
        INDArray g = delta.mul(product).sum(0).reshape(1, gradient.length()).divi(norm);
        gradient.assign(g.reshape(gradient.shape()));
    }

    /** Drops the arrays of the last pass. */
    void clear() {
        product = null;
    }
}
