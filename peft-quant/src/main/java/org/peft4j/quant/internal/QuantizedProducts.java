package org.peft4j.quant.internal;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.spi.DenseFloats;
import org.peft4j.quant.QuantizedMatmul;
import org.peft4j.quant.QuantizedTensor;

/**
 * The two products a frozen 4-bit dense layer needs, {@code z = x·dequant(W)} and
 * {@code eps = delta·dequant(W)ᵀ}. Float networks use the fused kernels of {@link QuantizedMatmul};
 * other dtypes (double, for gradient checks) multiply by the dequantized weight, which is the
 * same math at that precision. A single row that is a dense float32 vector skips ND4J entirely:
 * it is copied to the heap, multiplied by the 4-bit GEMV and copied back, three ND4J calls fewer
 * per product (each costs 15–35 µs on nd4j-native, see {@link DenseFloats}).
 *
 * <p>Thread-safety: stateless.
 */
public final class QuantizedProducts {

    private QuantizedProducts() {
    }

    /** {@code z = x·dequant(w)}, written into {@code z [batch, nOut]}. */
    public static void forward(QuantizedTensor w, INDArray x, INDArray z) {
        if (z.dataType() == DataType.FLOAT) {
            if (x.size(0) == 1 && DenseFloats.isDense(x) && DenseFloats.isDense(z)) {
                float[] y = new float[(int) z.length()];
                QuantizedMatmul.gemv(DenseFloats.read(x), w, y);
                DenseFloats.write(z, y);
                return;
            }
            if (x.size(0) > 1 && HostSgemm.available() && HostSgemm.isPlain(z)) {
                QuantizedMatmul.mmul(x, w, z);
                return;
            }
            z.assign(QuantizedMatmul.mmul(x, w));
        } else {
            Nd4j.gemm(x.castTo(z.dataType()), w.toINDArray().castTo(z.dataType()), z, false, false, 1.0, 0.0);
        }
    }

    /** {@code eps = delta·dequant(w)ᵀ}, written into {@code eps [batch, nIn]}. */
    public static void inputGradient(QuantizedTensor w, INDArray delta, INDArray eps) {
        if (eps.dataType() == DataType.FLOAT) {
            if (delta.size(0) == 1 && DenseFloats.isDense(delta) && DenseFloats.isDense(eps)) {
                float[] out = new float[(int) eps.length()];
                QuantizedMatmul.gemvTransposed(DenseFloats.read(delta), w, out);
                DenseFloats.write(eps, out);
                return;
            }
            if (delta.size(0) > 1 && TiledMatmul.directTransposed(eps)) {
                QuantizedMatmul.mmulTransposed(delta, w, eps);
                return;
            }
            eps.assign(QuantizedMatmul.mmulTransposed(delta, w));
        } else {
            Nd4j.gemm(delta.castTo(eps.dataType()), w.toINDArray().castTo(eps.dataType()), eps, false, true, 1.0, 0.0);
        }
    }
}
