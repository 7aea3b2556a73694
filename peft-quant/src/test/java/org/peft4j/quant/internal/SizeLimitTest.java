package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.peft4j.quant.QuantType;

/**
 * The 4-bit kernels at the top of the supported size: a {@code [2^20 - 1, 2048]} tensor
 * ({@code n = 2^31 - 2048} elements, 1 GiB of codes) in blocks of 4096, whose last block would end
 * at {@code 2^31}, one past {@code Integer.MAX_VALUE}. Block ends computed in {@code int} wrapped
 * negative there: dequantizing the tail wrote past its range and the batch-1 backward product on the
 * last row never finished; the batch-1 forward product walks that block row by row too. Expected values come from the NF4 table and the bytes directly.
 */
class SizeLimitTest {
    private static final int N_OUT = 2048;
    private static final int N_IN = (1 << 20) - 1;
    private static final int N = N_IN * N_OUT;
    private static final int BLOCK = 4096;
    private static final float LAST_ABSMAX = 0.5f;

    @Test
    void theLastBlockEndingAtTwoToTheThirtyOneIsReadWithoutOverflow() {
        byte[] packed = new byte[N / 2];
        int rowStart = N - N_OUT;
        for (int k = rowStart / 2; k < packed.length; k++) {
            packed[k] = (byte) (k * 37);
        }
        float[] absmax = new float[(int) (((long) N + BLOCK - 1) / BLOCK)];
        java.util.Arrays.fill(absmax, 1f);
        absmax[absmax.length - 1] = LAST_ABSMAX;
        BlockScales scales = BlockScales.plain(absmax);
        float[] pair = Blockwise4bit.pairTable(QuantType.NF4);

        float[] tail = new float[11];
        assertTimeoutPreemptively(Duration.ofSeconds(30),
                () -> Blockwise4bit.dequantize(packed, scales, BLOCK, pair, N - 10, N, tail, 0));
        for (int k = 0; k < 10; k++) {
            assertEquals(value(packed, N - 10 + k), tail[k], "element " + (N - 10 + k));
        }
        assertEquals(0f, tail[10], "nothing is written past the range");

        float[] g = TestArrays.gaussian(N_OUT, 21);
        float[] out = new float[N_IN];
        assertTimeoutPreemptively(Duration.ofSeconds(30),
                () -> Gemv4bit.gemvTransposedRows(packed, scales, BLOCK, pair, N_OUT, g, 0, out, 0, N_IN - 1, N_IN));
        double expected = 0;
        for (int j = 0; j < N_OUT; j++) {
            expected += (double) g[j] * value(packed, rowStart + j);
        }
        assertEquals(expected, out[N_IN - 1], 1e-4 * Math.sqrt(N_OUT), "last row of g · Wᵀ");

        // Forward, one row at a time (2048 is not a multiple of the block): x selects the last row.
        float[] x = new float[N_IN];
        x[N_IN - 1] = 1f;
        float[] y = new float[N_OUT];
        assertTimeoutPreemptively(Duration.ofSeconds(60),
                () -> Gemv4bit.gemvColumns(packed, scales, BLOCK, pair, N_IN, N_OUT, x, 0, y, 0, 0, N_OUT));
        for (int j = 0; j < N_OUT; j++) {
            assertEquals(value(packed, rowStart + j), y[j], "x · W, column " + j);
        }
    }

    /** Element {@code e} from the NF4 table: high nibble first, all of the last row in the last block. */
    private static float value(byte[] packed, int e) {
        int b = packed[e >>> 1] & 0xFF;
        int code = (e & 1) == 0 ? b >>> 4 : b & 15;
        return CodeTables.NF4[code] * LAST_ABSMAX;
    }
}
