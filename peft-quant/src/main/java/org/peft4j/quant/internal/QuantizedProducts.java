package org.peft4j.quant.internal;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.quant.QuantizedMatmul;
import org.peft4j.quant.QuantizedTensor;

/**
 * The two products a frozen 4-bit dense layer needs, {@code z = x·dequant(W)} and
 * {@code eps = delta·dequant(W)ᵀ}. Float networks use the fused kernels of {@link QuantizedMatmul};
 * other dtypes (double, for gradient checks) multiply by the dequantized weight, which is the
 * same math at that precision.
 *
 * <p>Thread-safety: stateless.
 */
public final class QuantizedProducts {

    private QuantizedProducts() {
    }

    /** {@code z = x·dequant(w)}, written into {@code z [batch, nOut]}. */
    public static void forward(QuantizedTensor w, INDArray x, INDArray z) {
        if (z.dataType() == DataType.FLOAT) {
            z.assign(QuantizedMatmul.mmul(x, w));
        } else {
            x.castTo(z.dataType()).mmuli(w.toINDArray().castTo(z.dataType()), z);
        }
    }

    /** {@code eps = delta·dequant(w)ᵀ}, written into {@code eps [batch, nIn]}. */
    public static void inputGradient(QuantizedTensor w, INDArray delta, INDArray eps) {
        if (eps.dataType() == DataType.FLOAT) {
            eps.assign(QuantizedMatmul.mmulTransposed(delta, w));
        } else {
            Nd4j.gemm(delta.castTo(eps.dataType()), w.toINDArray().castTo(eps.dataType()), eps, false, true, 1.0, 0.0);
        }
    }
}
