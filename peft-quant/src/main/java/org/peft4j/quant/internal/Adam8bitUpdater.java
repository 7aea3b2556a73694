package org.peft4j.quant.internal;

import java.util.HashMap;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.GradientUpdater;
import org.peft4j.quant.Adam8bit;

/**
 * The state and update of {@link Adam8bit}. DL4J gives each updater block (consecutive parameters
 * with one updater configuration) a float32 view of the state array. This updater packs three
 * 8-bit codes into each float as the exact integer {@code c0 + 256·c1 + 65536·c2} (below 2^24, so
 * always an exactly representable, normal or zero float), in the order: {@code n} codes of
 * {@code m}, {@code n} codes of {@code v}; then {@code ⌈n/B⌉} float scales of {@code m} and as many
 * of {@code v}. Packing four codes per float would save a quarter but is not safe: some code
 * patterns read as NaN floats, and ND4J's serializer rewrites NaN payloads (measured: one corrupted
 * state word after a {@code ModelSerializer} round trip). Hand-written: ND4J has no 8-bit
 * blockwise optimizer.
 *
 * <p>Thread-safety: one instance per parameter block, used by one thread at a time.
 */
public final class Adam8bitUpdater implements GradientUpdater<Adam8bit> {

    private final Adam8bit config;
    private INDArray view;

    public Adam8bitUpdater(Adam8bit config) {
        this.config = config;
    }

    @Override
    public Adam8bit getConfig() {
        return config;
    }

    @Override
    public void setState(Map<String, INDArray> stateMap, boolean initialize) {
        INDArray s = stateMap.get("S");
        if (s == null || stateMap.size() != 1) {
            throw new IllegalStateException("Adam8bit state map must hold one array under \"S\"; got keys " + stateMap.keySet());
        }
        setStateViewArray(s, s.shape(), s.ordering(), initialize);
    }

    @Override
    public Map<String, INDArray> getState() {
        Map<String, INDArray> m = new HashMap<>();
        m.put("S", view);
        return m;
    }

    @Override
    public void setStateViewArray(INDArray viewArray, long[] gradientShape, char gradientOrder, boolean initialize) {
        if (initialize) {
            viewArray.assign(0);
        }
        this.view = viewArray.reshape(viewArray.length());
    }

    /** Floats holding {@code codes} codes, three per float. */
    public static long packedFloats(long codes) {
        return (codes + 2) / 3;
    }

    @Override
    public void applyUpdater(INDArray gradient, int iteration, int epoch) {
        if (view == null) {
            throw new IllegalStateException("Adam8bit updater has not been given its state array");
        }
        int count = Math.toIntExact(gradient.length());
        // DL4J sizes a block's state as the sum of stateSize over its parameters, which is at least
        // stateSize of their total (the rounding is subadditive); the layout uses the first part.
        if (config.stateSize(count) > view.length()) {
            throw new IllegalStateException("Adam8bit state holds " + view.length() + " floats; " + count
                    + " parameters need " + config.stateSize(count));
        }
        int block = config.blockSize();
        int blocks = Blockwise8bit.blockCount(count, block);
        int codeFloats = (int) packedFloats(2L * count);
        float[] state = view.get(NDArrayIndex.interval(0, codeFloats + 2L * blocks)).castTo(DataType.FLOAT).toFloatVector();
        byte[] codes = new byte[2 * count];
        for (int i = 0; i < codes.length; i++) {
            int word = (int) state[i / 3];
            codes[i] = (byte) (word >>> (8 * (i % 3)));
        }
        byte[] mCodes = java.util.Arrays.copyOfRange(codes, 0, count);
        byte[] vCodes = java.util.Arrays.copyOfRange(codes, count, 2 * count);
        float[] mScale = java.util.Arrays.copyOfRange(state, codeFloats, codeFloats + blocks);
        float[] vScale = java.util.Arrays.copyOfRange(state, codeFloats + blocks, codeFloats + 2 * blocks);

        float[] m = new float[count];
        float[] v = new float[count];
        Blockwise8bit.dequantizeDynamic(mCodes, mScale, block, m);
        Blockwise8bit.dequantizeDynamic(vCodes, vScale, block, v);
        float[] g = gradient.castTo(DataType.FLOAT).dup('c').reshape(count).toFloatVector();

        double beta1 = config.beta1();
        double beta2 = config.beta2();
        int t = iteration + 1;
        double lr = config.getLearningRate(iteration, epoch);
        double c1 = 1 - Math.pow(beta1, t);
        double c2 = 1 - Math.pow(beta2, t);
        double eps = config.epsilon();
        for (int i = 0; i < count; i++) {
            double gi = g[i];
            double mi = beta1 * m[i] + (1 - beta1) * gi;
            double vi = beta2 * v[i] + (1 - beta2) * gi * gi;
            m[i] = (float) mi;
            v[i] = (float) vi;
            g[i] = (float) (lr * (mi / c1) / (Math.sqrt(vi / c2) + eps));
        }
        Blockwise8bit.quantizeDynamic(m, block, mCodes, mScale);
        Blockwise8bit.quantizeDynamic(v, block, vCodes, vScale);
        System.arraycopy(mCodes, 0, codes, 0, count);
        System.arraycopy(vCodes, 0, codes, count, count);
        java.util.Arrays.fill(state, 0, codeFloats, 0f);
        int[] words = new int[codeFloats];
        for (int i = 0; i < codes.length; i++) {
            words[i / 3] |= (codes[i] & 0xFF) << (8 * (i % 3));
        }
        for (int w = 0; w < codeFloats; w++) {
            state[w] = words[w];
        }
        System.arraycopy(mScale, 0, state, codeFloats, blocks);
        System.arraycopy(vScale, 0, state, codeFloats + blocks, blocks);
        view.get(NDArrayIndex.interval(0, state.length)).assign(Nd4j.createFromArray(state).castTo(view.dataType()));
        gradient.assign(Nd4j.createFromArray(g).reshape(gradient.shape()).castTo(gradient.dataType()));
    }
}
