package org.peft4j.lora.lycoris;

import java.io.Serializable;
import java.util.Map;
import org.deeplearning4j.nn.gradient.Gradient;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The computation every LyCORIS-style layer shares, in row form (see {@link LycorisAdapter}),
 * held by each layer implementation:
 * <pre>
 *   forward:   z += x · P'ᵀ                 x [rows, in·K], z [rows, out], P' = keep ⊙ P  [out, in·K]
 *   backward:  dP = keep ⊙ (deltaᵀ · x)     eps += delta · P'      (factor gradients from dP)
 * </pre>
 * {@code keep} is the rank-dropout draw, one factor per output feature (row of {@code P}):
 * {@code 1[u > p]}, divided by its mean when the adapter rescales (an all-dropped draw leaves a
 * zero update, where PEFT would divide by zero); 1 outside training. Module dropout leaves the
 * update out of a whole training pass with probability {@code p} (the factors then get zero
 * gradients). Both are drawn in a training forward pass and reused by its backward pass (also when
 * the backward pass recomputes the forward pass), then dropped.
 *
 * <p>Thread-safety: one instance per layer implementation, used by one thread at a time.
 */
public final class LycorisBranch implements Serializable {
    private static final long serialVersionUID = 1L;

    private boolean drawn;
    private boolean skipped;
    /** Rank-dropout factors {@code [out, 1]}, or null for none. Detached from workspaces. */
    private INDArray keep;

    private void draw(LycorisAdapter a, DataType dt) {
        drawn = true;
        skipped = a.moduleDropout() > 0 && !(Nd4j.getRandom().nextDouble() > a.moduleDropout());
        keep = null;
        if (a.rankDropout() > 0) {
            try (MemoryWorkspace ws = Nd4j.getMemoryManager().scopeOutOfWorkspaces()) {
                INDArray k = Nd4j.rand(DataType.DOUBLE, a.outFeatures(), 1).gt(a.rankDropout()).castTo(DataType.DOUBLE);
                double mean = k.meanNumber().doubleValue();
                if (a.rankDropoutScale() && mean > 0) {
                    k.divi(mean);
                }
                keep = k.castTo(dt);
            }
        }
    }

    private void settle(LycorisAdapter a, boolean training, boolean fresh, DataType dt) {
        if (!training) {
            drawn = false;
            skipped = false;
            keep = null;
        } else if (fresh || !drawn) {
            draw(a, dt);
        }
    }

    /** {@code P' = keep ⊙ P}: the update of the current pass, {@code [out, in·K]}. */
    private INDArray update(LycorisAdapter a, Map<String, INDArray> params) {
        INDArray p = a.deltaWeight(params);
        return keep == null ? p : p.muliColumnVector(keep);
    }

    /**
     * Adds the update to {@code z [rows, out]}, which holds the base layer's {@code x·W + b}.
     *
     * @param fresh a training forward pass (draws new dropout); false when the backward pass recomputes it
     */
    public void forward(LycorisAdapter a, Map<String, INDArray> params, INDArray x, INDArray z, boolean training,
                        boolean fresh) {
        settle(a, training, fresh, x.dataType());
        if (skipped) {
            return;
        }
        Nd4j.gemm(x, update(a, params), z, false, true, 1.0, 1.0);
    }

    /**
     * Writes the factors' gradients (into {@code gradientViews} and {@code g}) and adds the update's
     * part of the input gradient to {@code epsOut} (when not null), for the pass drawn last.
     */
    public void backward(LycorisAdapter a, Map<String, INDArray> params, Map<String, INDArray> gradientViews,
                         INDArray x, INDArray delta, Gradient g, INDArray epsOut) {
        settle(a, true, false, x.dataType());
        if (skipped) {
            for (String key : a.paramShapes().keySet()) {
                INDArray v = gradientViews.get(key);
                v.assign(0);
                g.gradientForVariable().put(key, v);
            }
            return;
        }
        INDArray dP = Nd4j.create(x.dataType(), new long[] {delta.size(1), x.size(1)}, 'c');
        Nd4j.gemm(delta, x, dP, true, false, 1.0, 0.0);
        if (keep != null) {
            dP.muliColumnVector(keep);
        }
        a.backward(params, dP, gradientViews);
        for (String key : a.paramShapes().keySet()) {
            g.gradientForVariable().put(key, gradientViews.get(key));
        }
        if (epsOut != null) {
            Nd4j.gemm(delta, update(a, params), epsOut, false, false, 1.0, 1.0);
        }
    }

    /** Drops the draw of the last pass. */
    public void reset() {
        drawn = false;
        skipped = false;
        keep = null;
    }
}
