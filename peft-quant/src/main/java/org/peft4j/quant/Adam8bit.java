package org.peft4j.quant;

import java.util.Map;
import java.util.Objects;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.schedule.ISchedule;
import org.nd4j.shade.jackson.annotation.JsonProperty;
import org.peft4j.quant.internal.Adam8bitUpdater;

/**
 * Adam with 8-bit blockwise optimizer state, as bitsandbytes' {@code Adam8bit}: both moments are
 * held as one 8-bit code per parameter plus one float32 scale per block of {@value #DEFAULT_BLOCK_SIZE},
 * dequantized for each update and re-quantized after it. The codes are 2 bytes per parameter, held
 * in DL4J's float32 state array four codes to a float (see {@link Adam8bitUpdater} for the bit
 * layout), so with the scales the state costs 2.03 bytes per parameter at block 256 instead of
 * float Adam's 8 ({@link #stateSize}: {@code ⌈n/2⌉ + 2⌈n/256⌉} floats).
 *
 * <p>Per step, with {@code g} the gradient and {@code t} the 1-based iteration, in float32
 * arithmetic as bitsandbytes' kernels compute it:
 * <pre>
 *   m = β1·m + (1-β1)·g        v = β2·v + (1-β2)·g²
 *   update = lr · (m / (1-β1^t)) / (√(v / (1-β2^t)) + ε)
 * </pre>
 * Both moments use the signed dynamic map of bitsandbytes' {@code create_dynamic_map} (bitsandbytes
 * uses the unsigned map for {@code v}; the signed one spends a bit on a sign {@code v} never has).
 *
 * <p>One deliberate difference from bitsandbytes: after the moments are updated, {@code |m|} is
 * clipped to {@code R·√v}, with {@code R = (1-β1) / (√(1-β2)·(1 - β1/√β2))} (about 31.8 for the
 * default betas) the largest ratio exact Adam can reach. Exact Adam is never clipped; the clip
 * matters when {@code v}, which spans the square of the gradients' range within a block, has been
 * stored as 0 while {@code m} has not. Without it, a parameter whose gradient then falls to exactly
 * 0 gets {@code m / ε} as its step: we measured parameters jumping from 0.03 to 340 within 50
 * steps of a QLoRA MLP (d 1024) trained on one batch, and an infinite {@code v} after 538 steps.
 * (No clip when {@code β1 ≥ √β2}, where {@code R} is infinite.)
 *
 * <p>Usable wherever DL4J takes an {@link IUpdater}: adapter parameters or full fine-tuning. The
 * state lives in DL4J's updater state array (codes packed into the bits of normal, finite floats),
 * so it survives {@code clone()}, {@code ModelSerializer} and checkpoints like any updater state.
 * It is read and written as float values on the Java side, so it works on any backend; it must not
 * be averaged or otherwise computed on as numbers (as parameter-averaging trainers do with
 * updater state). The state array must be FLOAT or DOUBLE (DL4J gives it the network's data type):
 * 16-bit floats cannot hold the packed words, so a HALF or BFLOAT16 network is refused with a
 * message. A gradient that is NaN or infinite, or so large that the second moment overflows
 * float32, is refused too, giving its index in the updater block, before that block's state or
 * gradient is changed.
 *
 * <p>bitsandbytes' <em>paged</em> optimizers exist to survive GPU memory spikes by paging state
 * to host memory through CUDA unified memory; on the CPU backend the state already lives in host
 * memory and there is nothing to page, so peft4j offers no paged variant.
 *
 * <p>Thread-safety: immutable configuration.
 */
public final class Adam8bit implements IUpdater {
    private static final long serialVersionUID = 1L;

    public static final int DEFAULT_BLOCK_SIZE = 256;

    @JsonProperty("learningRate")
    private double learningRate = 1e-3;
    @JsonProperty("beta1")
    private double beta1 = 0.9;
    @JsonProperty("beta2")
    private double beta2 = 0.999;
    @JsonProperty("epsilon")
    private double epsilon = 1e-8;
    @JsonProperty("blockSize")
    private int blockSize = DEFAULT_BLOCK_SIZE;

    /** For JSON deserialization. */
    private Adam8bit() {
    }

    /**
     * @throws IllegalArgumentException if the learning rate is not a positive number, a beta is
     *     outside [0, 1), epsilon is not a positive number, or the block size is not a power of two in 64…4096
     */
    public Adam8bit(double learningRate, double beta1, double beta2, double epsilon, int blockSize) {
        checkLearningRate(learningRate);
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("beta1 and beta2 must be in [0, 1); got " + beta1 + ", " + beta2);
        }
        if (!(epsilon > 0) || Double.isInfinite(epsilon)) {
            throw new IllegalArgumentException("epsilon must be a positive number; got " + epsilon + " (with 0, a "
                    + "parameter whose gradients have all been 0, as LoRA's A at the first step, updates by 0/0 = NaN)");
        }
        if (blockSize < 64 || blockSize > 4096 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("block size must be a power of two in 64..4096; got " + blockSize);
        }
        this.learningRate = learningRate;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.epsilon = epsilon;
        this.blockSize = blockSize;
    }

    /** Adam8bit with bitsandbytes' defaults (β1 0.9, β2 0.999, ε 1e-8, block 256) and the given learning rate. */
    public Adam8bit(double learningRate) {
        this(learningRate, 0.9, 0.999, 1e-8, DEFAULT_BLOCK_SIZE);
    }

    public double beta1() {
        return beta1;
    }

    public double beta2() {
        return beta2;
    }

    public double epsilon() {
        return epsilon;
    }

    public int blockSize() {
        return blockSize;
    }

    /**
     * Floats of DL4J's state array for {@code numParams} parameters: the codes of both moments,
     * four per float (two parameters), then the block scales.
     */
    @Override
    public long stateSize(long numParams) {
        return Adam8bitUpdater.packedFloats(numParams) + 2 * ((numParams + blockSize - 1) / blockSize);
    }

    @Override
    public GradientUpdater instantiate(INDArray viewArray, boolean initializeViewArray) {
        Adam8bitUpdater u = new Adam8bitUpdater(this);
        u.setStateViewArray(viewArray, viewArray.shape(), viewArray.ordering(), initializeViewArray);
        return u;
    }

    @Override
    public GradientUpdater instantiate(Map<String, INDArray> updaterState, boolean initializeStateArrays) {
        Adam8bitUpdater u = new Adam8bitUpdater(this);
        u.setState(updaterState, initializeStateArrays);
        return u;
    }

    @Override
    public IUpdater clone() {
        return new Adam8bit(learningRate, beta1, beta2, epsilon, blockSize);
    }

    @Override
    public double getLearningRate(int iteration, int epoch) {
        return learningRate;
    }

    @Override
    public boolean hasLearningRate() {
        return true;
    }

    @Override
    public void setLrAndSchedule(double lr, ISchedule lrSchedule) {
        if (lrSchedule != null) {
            throw new UnsupportedOperationException("Adam8bit takes a fixed learning rate; schedules are not supported");
        }
        checkLearningRate(lr);
        this.learningRate = lr;
    }

    private static void checkLearningRate(double lr) {
        if (!(lr > 0) || Double.isInfinite(lr)) {
            throw new IllegalArgumentException("learning rate must be a positive number; got " + lr);
        }
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Adam8bit)) {
            return false;
        }
        Adam8bit a = (Adam8bit) o;
        return learningRate == a.learningRate && beta1 == a.beta1 && beta2 == a.beta2 && epsilon == a.epsilon
                && blockSize == a.blockSize;
    }

    @Override
    public int hashCode() {
        return Objects.hash(learningRate, beta1, beta2, epsilon, blockSize);
    }

    @Override
    public String toString() {
        return "Adam8bit(lr=" + learningRate + ", beta1=" + beta1 + ", beta2=" + beta2 + ", epsilon=" + epsilon
                + ", blockSize=" + blockSize + ")";
    }
}
