package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * {@link NormKernel} against the LayerNorm/RMSNorm formulas written out per element (in the
 * javadocs of {@code LayerNorm} and {@code RmsNorm}), on more rows than one heap block holds and a
 * width that is not a multiple of the kernels' partial sums (four in double, eight in float32), in float32
 * and float64.
 */
class NormKernelTest {
    private static final int N = 700;
    private static final int D = 13;
    private static final double EPS = 1e-5;

    private static double[][] random(long seed, double scale, double shift) {
        java.util.Random r = new java.util.Random(seed);
        double[][] a = new double[N][D];
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < D; j++) {
                a[i][j] = r.nextGaussian() * scale + shift;
            }
        }
        return a;
    }

    private static double[] vector(long seed) {
        java.util.Random r = new java.util.Random(seed);
        double[] v = new double[D];
        for (int j = 0; j < D; j++) {
            v[j] = 0.5 + r.nextDouble();
        }
        return v;
    }

    /** Reference forward and backward of one row; returns {y, dx} and accumulates dg, db. */
    private static double[][] reference(double[] x, double[] dy, double[] g, double[] b, boolean centered,
                                        double[] dg, double[] db) {
        double mu = 0;
        if (centered) {
            for (double v : x) {
                mu += v / D;
            }
        }
        double var = 0;
        for (double v : x) {
            var += (v - mu) * (v - mu) / D;
        }
        double r = 1 / Math.sqrt(var + EPS);
        double[] xhat = new double[D];
        double[] y = new double[D];
        double meanG = 0;
        double meanGx = 0;
        for (int j = 0; j < D; j++) {
            xhat[j] = (x[j] - mu) * r;
            y[j] = g[j] * xhat[j] + (centered ? b[j] : 0);
            meanG += g[j] * dy[j] / D;
            meanGx += g[j] * dy[j] * xhat[j] / D;
            dg[j] += dy[j] * xhat[j];
            if (centered) {
                db[j] += dy[j];
            }
        }
        double[] dx = new double[D];
        for (int j = 0; j < D; j++) {
            dx[j] = r * (g[j] * dy[j] - (centered ? meanG : 0) - xhat[j] * meanGx);
        }
        return new double[][] {y, dx};
    }

    private static void check(DataType type, boolean centered, double tol) {
        double[][] x = random(1, 2.0, 0.7);
        double[][] dy = random(2, 1.0, 0.0);
        double[] g = vector(3);
        double[] b = vector(4);
        INDArray xa = Nd4j.createFromArray(x).castTo(type);
        INDArray dya = Nd4j.createFromArray(dy).castTo(type);
        INDArray y = Nd4j.createUninitialized(type, N, D);
        INDArray dx = Nd4j.createUninitialized(type, N, D);
        double[] dg = new double[D];
        double[] db = centered ? new double[D] : null;
        NormKernel.forward(xa, y, g, centered ? b : null, EPS);
        NormKernel.backward(xa, dya, dx, g, centered, EPS, dg, db);
        double[] refDg = new double[D];
        double[] refDb = new double[D];
        for (int i = 0; i < N; i++) {
            // the reference reads the same (possibly float-rounded) inputs the kernel read
            double[] xi = xa.getRow(i).toDoubleVector();
            double[] dyi = dya.getRow(i).toDoubleVector();
            double[][] ref = reference(xi, dyi, g, b, centered, refDg, refDb);
            for (int j = 0; j < D; j++) {
                assertEquals(ref[0][j], y.getDouble(i, j), tol * Math.max(1, Math.abs(ref[0][j])), "y " + i + "," + j);
                assertEquals(ref[1][j], dx.getDouble(i, j), tol * Math.max(1, Math.abs(ref[1][j])), "dx " + i + "," + j);
            }
        }
        // float32 arrays are reduced in float32: their sums carry float rounding
        double sumTol = type == DataType.FLOAT ? 1e-6 : 1e-9;
        for (int j = 0; j < D; j++) {
            assertEquals(refDg[j], dg[j], sumTol * N, "dg " + j);
            if (centered) {
                assertEquals(refDb[j], db[j], sumTol * N, "db " + j);
            }
        }
    }

    @Test
    void layerNormMatchesItsFormulaInDoubleAndFloat() {
        check(DataType.DOUBLE, true, 1e-12);
        check(DataType.FLOAT, true, 2e-6);
    }

    @Test
    void rmsNormMatchesItsFormulaInDoubleAndFloat() {
        check(DataType.DOUBLE, false, 1e-12);
        check(DataType.FLOAT, false, 2e-6);
    }

    @Test
    void outputMayOverwriteTheInput() {
        INDArray x = Nd4j.createFromArray(new double[][] {{1, 2, 3}, {4, 4, 5}});
        INDArray expected = Nd4j.createUninitialized(DataType.DOUBLE, 2, 3);
        double[] g = {1, 1, 1};
        double[] b = {0, 0, 0};
        NormKernel.forward(x, expected, g, b, EPS);
        NormKernel.forward(x, x, g, b, EPS);
        assertEquals(expected, x);
    }

    /**
     * The float32 path on rows as wide as MiniLM's (plus a remainder past the vector width) against
     * the double path on the same float-rounded inputs, with the gradient written over {@code dy}
     * and the output over {@code x}, as the layers may do.
     */
    @Test
    void floatRowsWiderThanTheVectorsMatchTheDoublePathAlsoInPlace() {
        int n = 45;
        int d = 389;
        java.util.Random r = new java.util.Random(5);
        double[][] x = new double[n][d];
        double[][] dy = new double[n][d];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) {
                x[i][j] = r.nextGaussian() * 3 + 1.5;
                dy[i][j] = r.nextGaussian();
            }
        }
        double[] g = new double[d];
        double[] b = new double[d];
        for (int j = 0; j < d; j++) {
            g[j] = 0.5 + r.nextDouble();
            b[j] = r.nextGaussian();
        }
        for (boolean centered : new boolean[] {true, false}) {
            INDArray xf = Nd4j.createFromArray(x).castTo(DataType.FLOAT);
            INDArray dyf = Nd4j.createFromArray(dy).castTo(DataType.FLOAT);
            INDArray xd = xf.castTo(DataType.DOUBLE);
            INDArray dyd = dyf.castTo(DataType.DOUBLE);
            INDArray yd = Nd4j.createUninitialized(DataType.DOUBLE, n, d);
            INDArray dxd = Nd4j.createUninitialized(DataType.DOUBLE, n, d);
            double[] dgd = new double[d];
            double[] dbd = new double[d];
            NormKernel.forward(xd, yd, g, centered ? b : null, EPS);
            NormKernel.backward(xd, dyd, dxd, g, centered, EPS, dgd, dbd);
            double[] dgf = new double[d];
            double[] dbf = new double[d];
            NormKernel.backward(xf, dyf, dyf, g, centered, EPS, dgf, dbf);
            NormKernel.forward(xf, xf, g, centered ? b : null, EPS);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < d; j++) {
                    double y = yd.getDouble(i, j);
                    double dx = dxd.getDouble(i, j);
                    assertEquals(y, xf.getDouble(i, j), 2e-6 * Math.max(1, Math.abs(y)), "y " + i + "," + j);
                    assertEquals(dx, dyf.getDouble(i, j), 2e-6 * Math.max(1, Math.abs(dx)), "dx " + i + "," + j);
                }
            }
            for (int j = 0; j < d; j++) {
                assertEquals(dgd[j], dgf[j], 1e-6 * n, "dg " + j);
                assertEquals(dbd[j], dbf[j], 1e-6 * n, "db " + j);
            }
        }
    }

    /** Every element as a double (exact for float32 and float64), for bit-for-bit comparisons. */
    private static double[] values(INDArray a) {
        return a.dup('c').data().asDouble();
    }

    /** Random {@code [n, d]} rows of the given type. */
    private static INDArray rows(long seed, int n, int d, DataType type) {
        java.util.Random r = new java.util.Random(seed);
        double[][] a = new double[n][d];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) {
                a[i][j] = r.nextGaussian() * 2 + 0.3;
            }
        }
        return Nd4j.createFromArray(a).castTo(type);
    }

    /**
     * The row statistics the float32 forward pass keeps give the backward pass bit for bit the
     * input gradient and parameter gradients it computes without them; a forward pass on another
     * input fills other statistics, which change the result (so the backward pass does read them).
     * The double path keeps none.
     */
    @Test
    void keptRowStatisticsGiveTheRecomputedBackwardBitForBit() {
        int n = 70;
        int d = 389;
        double[] g = new double[d];
        double[] b = new double[d];
        java.util.Random r = new java.util.Random(9);
        for (int j = 0; j < d; j++) {
            g[j] = 0.5 + r.nextDouble();
            b[j] = r.nextGaussian();
        }
        for (boolean centered : new boolean[] {true, false}) {
            INDArray x = rows(11, n, d, DataType.FLOAT);
            INDArray dy = rows(12, n, d, DataType.FLOAT);
            INDArray y = Nd4j.createUninitialized(DataType.FLOAT, n, d);
            float[] stats = new float[2 * n];
            assertTrue(NormKernel.forward(x, y, g, centered ? b : null, EPS, stats));
            INDArray yPlain = Nd4j.createUninitialized(DataType.FLOAT, n, d);
            NormKernel.forward(x, yPlain, g, centered ? b : null, EPS);
            assertArrayEquals(values(yPlain), values(y), "forward output");

            INDArray dxRecomputed = Nd4j.createUninitialized(DataType.FLOAT, n, d);
            double[] dg0 = new double[d];
            double[] db0 = new double[d];
            NormKernel.backward(x, dy, dxRecomputed, g, centered, EPS, dg0, db0);
            INDArray dxKept = Nd4j.createUninitialized(DataType.FLOAT, n, d);
            double[] dg1 = new double[d];
            double[] db1 = new double[d];
            NormKernel.backward(x, dy, dxKept, g, centered, EPS, dg1, db1, stats);
            assertArrayEquals(values(dxRecomputed), values(dxKept), "dx with kept statistics, centered " + centered);
            assertArrayEquals(dg0, dg1, "dg");
            assertArrayEquals(db0, db1, "db");

            float[] other = new float[2 * n];
            NormKernel.forward(rows(13, n, d, DataType.FLOAT), y, g, centered ? b : null, EPS, other);
            INDArray dxOther = Nd4j.createUninitialized(DataType.FLOAT, n, d);
            NormKernel.backward(x, dy, dxOther, g, centered, EPS, null, null, other);
            assertNotEquals(dxRecomputed, dxOther, "statistics of another input must change dx");
        }
        INDArray xd = rows(11, n, d, DataType.DOUBLE);
        assertFalse(NormKernel.forward(xd, Nd4j.createUninitialized(DataType.DOUBLE, n, d), g, b, EPS, new float[2 * n]),
                "the double path keeps no statistics");
    }

    /**
     * A frozen layer's backward pass ({@code dg} null) writes the same input gradient, bit for bit,
     * as the pass that also sums the gain and bias gradients, in float32 and float64, with and
     * without kept statistics.
     */
    @Test
    void inputGradientAloneEqualsTheFullBackwardsInputGradient() {
        int n = 40;
        int d = 389;
        double[] g = new double[d];
        java.util.Random r = new java.util.Random(3);
        for (int j = 0; j < d; j++) {
            g[j] = 0.5 + r.nextDouble();
        }
        for (DataType type : new DataType[] {DataType.FLOAT, DataType.DOUBLE}) {
            for (boolean centered : new boolean[] {true, false}) {
                INDArray x = rows(21, n, d, type);
                INDArray dy = rows(22, n, d, type);
                INDArray full = Nd4j.createUninitialized(type, n, d);
                NormKernel.backward(x, dy, full, g, centered, EPS, new double[d], centered ? new double[d] : null);
                INDArray only = Nd4j.createUninitialized(type, n, d);
                NormKernel.backward(x, dy, only, g, centered, EPS, null, null, null);
                assertArrayEquals(values(full), values(only), type + " centered " + centered);
                float[] stats = new float[2 * n];
                NormKernel.forward(x, Nd4j.createUninitialized(type, n, d), g, centered ? g : null, EPS, stats);
                INDArray onlyKept = Nd4j.createUninitialized(type, n, d);
                NormKernel.backward(x, dy, onlyKept, g, centered, EPS, null, null, stats);
                assertArrayEquals(values(full), values(onlyKept), type + " centered " + centered + " with kept statistics");
            }
        }
    }
}
