package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.peft4j.core.blocks.ExactGelu;

/**
 * {@link GeluKernel} against {@link ExactGelu} on double arrays (ND4J's erf and exp from the C
 * library), the reference the gradient checks validate, and which arrays it takes.
 */
class GeluKernelTest {

    /** x from −12 to 12 in steps of 1/4096 (98,305 values: many kernel blocks and a partial one). */
    private static INDArray grid() {
        int n = 24 * 4096 + 1;
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = -12 + i / 4096.0;
        }
        return Nd4j.createFromArray(x).reshape(1, n);
    }

    private static INDArray wavyGradient(long n) {
        double[] g = new double[(int) n];
        for (int i = 0; i < n; i++) {
            g[i] = Math.sin(i * 0.37) * 3;
        }
        return Nd4j.createFromArray(g).reshape(1, n);
    }

    @Test
    void forwardIsWithinAQuarterMillionthRelativeToMaxOfOneAndX() {
        INDArray xd = grid();
        INDArray ref = new ExactGelu().getActivation(xd.dup(), false);
        INDArray xf = xd.castTo(DataType.FLOAT);
        assertTrue(GeluKernel.handles(xf, null));
        GeluKernel.forward(xf);
        double worst = 0;
        for (long i = 0; i < xd.length(); i++) {
            double x = xd.getDouble(i);
            double err = Math.abs(xf.getDouble(i) - ref.getDouble(i)) / Math.max(1, Math.abs(x));
            worst = Math.max(worst, err);
        }
        assertTrue(worst <= 2.5e-7, "worst error " + worst);
        assertEquals(0.0, xf.getDouble(xd.length() / 2), 0.0, "gelu(0) = 0");
    }

    @Test
    void backwardIsWithinSixTenMillionthsOfTheIncomingGradient() {
        INDArray xd = grid();
        INDArray gd = wavyGradient(xd.length());
        INDArray ref = new ExactGelu().backprop(xd.dup(), gd).getFirst();
        INDArray xf = xd.castTo(DataType.FLOAT);
        INDArray gf = gd.castTo(DataType.FLOAT);
        assertTrue(GeluKernel.handles(xf, gf));
        GeluKernel.backward(xf, gf);
        double worst = 0;
        for (long i = 0; i < xd.length(); i++) {
            double err = Math.abs(xf.getDouble(i) - ref.getDouble(i)) / Math.max(1e-30, Math.abs(gf.getDouble(i)));
            worst = Math.max(worst, err);
        }
        assertTrue(worst <= 6e-7, "worst error " + worst);
        assertEquals(gd.getDouble(5), gf.getDouble(5), 1e-6, "the incoming gradient is left as it was");
    }

    @Test
    void forwardKeepingTheDerivativeGivesTheForwardAndTheGradientPerUnitOfTheSeparateKernels() {
        INDArray xd = grid();
        INDArray gd = wavyGradient(xd.length());
        INDArray refY = new ExactGelu().getActivation(xd.dup(), false);
        INDArray refDx = new ExactGelu().backprop(xd.dup(), gd).getFirst();
        INDArray xf = xd.castTo(DataType.FLOAT);
        INDArray d = GeluKernel.derivativeArray(xf, null);
        assertTrue(d == GeluKernel.derivativeArray(xf, d), "a fitting spare array is reused");
        assertTrue(GeluKernel.handles(xf, d));
        assertTrue(GeluKernel.fusable(new ExactGelu(), xf));
        GeluKernel.forward(xf, d);
        INDArray dx = d.mul(gd.castTo(DataType.FLOAT));
        double worstY = 0;
        double worstDx = 0;
        for (long i = 0; i < xd.length(); i++) {
            double x = xd.getDouble(i);
            worstY = Math.max(worstY, Math.abs(xf.getDouble(i) - refY.getDouble(i)) / Math.max(1, Math.abs(x)));
            worstDx = Math.max(worstDx, Math.abs(dx.getDouble(i) - refDx.getDouble(i))
                    / Math.max(1e-30, Math.abs(gd.getDouble(i))));
        }
        assertTrue(worstY <= 2.5e-7, "worst forward error " + worstY);
        assertTrue(worstDx <= 6e-7, "worst gradient error " + worstDx);
    }

    @Test
    void exactGeluOnFloatMatricesAgreesWithItsDoublePathInBothOrdersAndOnViews() {
        Nd4j.getRandom().setSeed(3);
        INDArray x = Nd4j.randn(DataType.DOUBLE, 37, 300).muli(3);
        INDArray g = Nd4j.randn(DataType.DOUBLE, 37, 300);
        ExactGelu gelu = new ExactGelu();
        INDArray refY = gelu.getActivation(x.dup(), false);
        INDArray refDx = gelu.backprop(x.dup(), g).getFirst();
        for (char xo : new char[] {'c', 'f'}) {
            for (char go : new char[] {'c', 'f'}) {
                INDArray y = gelu.getActivation(x.castTo(DataType.FLOAT).dup(xo), false);
                assertClose(refY, y, 2e-6);
                INDArray dx = gelu.backprop(x.castTo(DataType.FLOAT).dup(xo), g.castTo(DataType.FLOAT).dup(go))
                        .getFirst();
                assertClose(refDx, dx, 3e-6);
            }
        }
        // a column slice is not one contiguous run: the ND4J path computes it
        INDArray wide = x.castTo(DataType.FLOAT).dup('c');
        INDArray slice = wide.get(NDArrayIndex.all(), NDArrayIndex.interval(10, 20));
        assertFalse(GeluKernel.handles(slice, null));
        gelu.getActivation(slice, false);
        assertClose(refY.get(NDArrayIndex.all(), NDArrayIndex.interval(10, 20)), slice, 2e-6);
        assertClose(x.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 10)),
                wide.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 10)), 1e-6);
    }

    @Test
    void doubleArraysAreLeftToNd4j() {
        INDArray x = Nd4j.createFromArray(1.0, 2.0);
        assertFalse(GeluKernel.handles(x, null));
        assertFalse(GeluKernel.handles(x.castTo(DataType.FLOAT), x));
    }

    private static void assertClose(INDArray expected, INDArray actual, double tol) {
        assertEquals(expected.rows(), actual.rows());
        assertEquals(expected.columns(), actual.columns());
        for (int r = 0; r < expected.rows(); r++) {
            for (int c = 0; c < expected.columns(); c++) {
                assertEquals(expected.getDouble(r, c), actual.getDouble(r, c), tol, "(" + r + ", " + c + ")");
            }
        }
    }
}
