package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.quant.QuantType;

/**
 * The fused 4-bit products split over the common pool give, when two model copies that share one
 * 4-bit weight (as QLoRA copies do) run them at the same time on two threads, exactly the
 * results of one thread alone.
 */
class FusedProductsConcurrencyTest {

    @Test
    void twoThreadsSharingOneWeightGetTheSingleThreadedResults() throws Exception {
        assumeTrue(NativeKernels.level() == NativeKernels.LEVEL_AVX512, NativeKernels.status());
        NativeKernelsTest.Matrix m = NativeKernelsTest.Matrix.random(131, 1024, 64, QuantType.NF4, true, 10);
        INDArray g = Nd4j.create(TestArrays.gaussian(64 * 1024, 13), new long[] {64, 1024}, 'c');
        INDArray x = Nd4j.create(TestArrays.gaussian(48 * 131, 14), new long[] {48, 131}, 'c');
        float[] refT = TiledMatmul.mmulTransposed(g, m.packed(), m.scales(), 64, m.pair(), 131, 1024, true, true)
                .ravel().toFloatVector();
        float[] refF = TiledMatmul.mmul(x, m.packed(), m.scales(), 64, m.pair(), 131, 1024, true, true).ravel().toFloatVector();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<float[][]>> runs = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                Callable<float[][]> c = () -> {
                    float[][] last = null;
                    for (int i = 0; i < 30; i++) {
                        last = new float[][] {
                            TiledMatmul.mmulTransposed(g, m.packed(), m.scales(), 64, m.pair(), 131, 1024, true, true)
                                    .ravel().toFloatVector(),
                            TiledMatmul.mmul(x, m.packed(), m.scales(), 64, m.pair(), 131, 1024, true, true)
                                    .ravel().toFloatVector()};
                        assertArrayEquals(refT, last[0], 0f, "g·Wᵀ on a second thread, run " + i);
                        assertArrayEquals(refF, last[1], 0f, "x·W on a second thread, run " + i);
                    }
                    return last;
                };
                runs.add(pool.submit(c));
            }
            for (Future<float[][]> f : runs) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
