package org.peft4j.lora.lycoris;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The initialisation Hugging Face PEFT gives LyCORIS factors: PyTorch's
 * {@code kaiming_uniform_(t, a=√5)}, which is {@code U(−1/√fan_in, 1/√fan_in)} with
 * {@code fan_in = shape[1]·shape[2]·…} of the tensor in PEFT's orientation (so a {@code [out, r]}
 * factor has {@code fan_in = r}), and zeros for the factor that makes a fresh adapter an identity.
 *
 * <p>Thread-safety: stateless; draws from ND4J's random generator.
 */
public final class LycorisInit {

    private LycorisInit() {
    }

    /** {@code fan_in} of a tensor of {@code shape} as PyTorch computes it. */
    public static long fanIn(long[] shape) {
        long f = 1;
        for (int i = 1; i < shape.length; i++) {
            f *= shape[i];
        }
        return f;
    }

    /** Fills {@code view} (in PEFT's orientation) from {@code U(−1/√fan_in, 1/√fan_in)}. */
    public static void kaimingUniform(INDArray view) {
        double bound = 1.0 / Math.sqrt(fanIn(view.shape()));
        view.assign(Nd4j.rand(view.dataType(), view.shape()).muli(2 * bound).subi(bound));
    }
}
