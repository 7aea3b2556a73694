package org.peft4j.core.blocks.internal;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * LayerNorm and RMSNorm over the rows of a {@code 'c'}-ordered contiguous {@code [n, d]} array
 * (the formulas are in {@link org.peft4j.core.blocks.LayerNorm} and
 * {@link org.peft4j.core.blocks.RmsNorm}), on heap copies: float64 arrays in double on blocks of
 * rows ({@link HostRows}), float32 arrays in float32 a row at a time (see {@code forwardFloat}).
 *
 * <p>Why by hand: in ND4J the statistics, the normalization and the affine map are about ten ops
 * over the activations forward and twenty backward, each with a fixed cost of 15–35 µs on
 * nd4j-native 1.0.0-M2.1 and a full pass over memory; here a row ({@code d} of a few hundred
 * values) stays in the L1 cache while it is read twice and written once.
 *
 * <p>Thread-safety: stateless.
 */
public final class NormKernel {
    /**
     * Elements per heap block of the double path, and per float partial sum of {@code dg} and
     * {@code db} (whole rows).
     */
    static final int BLOCK = 8192;

    private NormKernel() {
    }

    /**
     * {@code y = g ⊙ x̂ (+ b)} for every row; {@code x} and {@code y} are {@code [n, d]},
     * {@link HostRows#accessible} and {@code 'c'}-ordered (they may be the same array).
     *
     * @param b the bias, or null for RMSNorm (which does not center)
     */
    public static void forward(INDArray x, INDArray y,
                               double[] g, double[] b, double eps) {
        forward(x, y, g, b, eps, null);
    }

    /**
     * {@link #forward(INDArray, INDArray, double[], double[], double)}, keeping each row's statistics
     * for {@link #backward(INDArray, INDArray, INDArray, double[], boolean, double, double[], double[], float[])}
     * when the float32 path runs: {@code stats[2r] = μ} and {@code stats[2r + 1] = r} of row {@code r}
     * (exactly the values the backward pass would compute again from the same {@code x}).
     *
     * @param stats null, or at least {@code 2n} floats to fill
     * @return whether {@code stats} was filled
     */
    public static boolean forward(INDArray x, INDArray y,
                                  double[] g, double[] b, double eps, float[] stats) {
        if (allFloat(x, y)) {
            forwardFloat(x, y, g, b, eps, stats);
            return stats != null;
        }
        int d = g.length;
        long n = x.length() / d;
        boolean centered = b != null;
        HostRows in = HostRows.of(x);
        HostRows out = x == y ? in : HostRows.of(y);
        int rowsPerBlock = Math.max(1, BLOCK / d);
        double[] v = new double[rowsPerBlock * d];
        for (long r0 = 0; r0 < n; r0 += rowsPerBlock) {
            int rows = (int) Math.min(rowsPerBlock, n - r0);
            int len = rows * d;
            in.read(r0 * d, v, len);
            for (int r = 0; r < rows; r++) {
                int o = r * d;
                double mu = centered ? sum(v, o, d) / d : 0.0;
                double rs = 1.0 / Math.sqrt(centeredSquares(v, o, d, mu) / d + eps);
                if (centered) {
                    for (int j = 0; j < d; j++) {
                        v[o + j] = (v[o + j] - mu) * rs * g[j] + b[j];
                    }
                } else {
                    for (int j = 0; j < d; j++) {
                        v[o + j] = v[o + j] * rs * g[j];
                    }
                }
            }
            out.write(r0 * d, v, len);
        }
        return false;
    }

    /**
     * {@code dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂))} with {@code ĝ = g ⊙ dy} (RMSNorm: without the
     * {@code mean(ĝ)} term) for every row, written into {@code dx}; {@code dg += Σ_rows dy ⊙ x̂} and,
     * when {@code db} is not null, {@code db += Σ_rows dy}. All arrays {@code [n, d]},
     * {@link HostRows#accessible} and {@code 'c'}-ordered; {@code dx} may be {@code dy}.
     *
     * @param centered LayerNorm (true) or RMSNorm (false)
     */
    public static void backward(INDArray x, INDArray dy,
                                INDArray dx, double[] g, boolean centered, double eps,
                                double[] dg, double[] db) {
        backward(x, dy, dx, g, centered, eps, dg, db, null);
    }

    /**
     * {@link #backward(INDArray, INDArray, INDArray, double[], boolean, double, double[], double[])}
     * for a layer whose {@code g} and {@code b} may be frozen: with {@code dg} null neither
     * {@code dg} nor {@code db} is computed (only {@code dx}). {@code stats}, when not null, holds
     * the row statistics that {@link #forward(INDArray, INDArray, double[], double[], double, float[])}
     * kept for this same {@code x}; the float32 path then reads them instead of computing them again
     * (the double path always computes them).
     */
    public static void backward(INDArray x, INDArray dy,
                                INDArray dx, double[] g, boolean centered, double eps,
                                double[] dg, double[] db, float[] stats) {
        if (allFloat(x, dy, dx)) {
            backwardFloat(x, dy, dx, g, centered, eps, dg, db, stats);
            return;
        }
        int d = g.length;
        long n = x.length() / d;
        HostRows xs = HostRows.of(x);
        HostRows dys = HostRows.of(dy);
        HostRows dxs = dx == dy ? dys : HostRows.of(dx);
        int rowsPerBlock = Math.max(1, BLOCK / d);
        double[] v = new double[rowsPerBlock * d];
        double[] e = new double[rowsPerBlock * d];
        for (long r0 = 0; r0 < n; r0 += rowsPerBlock) {
            int rows = (int) Math.min(rowsPerBlock, n - r0);
            int len = rows * d;
            xs.read(r0 * d, v, len);
            dys.read(r0 * d, e, len);
            for (int r = 0; r < rows; r++) {
                int o = r * d;
                double mu = centered ? sum(v, o, d) / d : 0.0;
                double rs = 1.0 / Math.sqrt(centeredSquares(v, o, d, mu) / d + eps);
                double sg = 0;
                double sgx = 0;
                for (int j = 0; j < d; j++) {
                    double xhat = (v[o + j] - mu) * rs;
                    double dyj = e[o + j];
                    double gh = g[j] * dyj;
                    v[o + j] = xhat;
                    sg += gh;
                    sgx += gh * xhat;
                }
                if (dg != null) {
                    for (int j = 0; j < d; j++) {
                        dg[j] += e[o + j] * v[o + j];
                        if (db != null) {
                            db[j] += e[o + j];
                        }
                    }
                }
                double meanG = centered ? sg / d : 0.0;
                double meanGx = sgx / d;
                for (int j = 0; j < d; j++) {
                    e[o + j] = rs * (g[j] * e[o + j] - meanG - v[o + j] * meanGx);
                }
            }
            dxs.write(r0 * d, e, len);
        }
    }

    private static boolean allFloat(INDArray... arrays) {
        for (INDArray a : arrays) {
            if (a.dataType() != DataType.FLOAT || !HostRows.accessible(a)) {
                return false;
            }
        }
        return true;
    }

    /**
     * {@link #forward} for float32 arrays, in float32 throughout, a row at a time: the row statistics
     * with eight partial sums ({@link FloatRows}), {@code y = (x − μ)·(r·g) + b} in a loop C2
     * vectorizes. The double path converted every element to double and back, which took longer
     * than the arithmetic. Each row is copied into a heap array that starts at index 0, like
     * {@code g} and {@code b}: HotSpot 17's C2 vectorizes a loop only when all its array indices
     * have the same loop-invariant offset (with rows read at {@code [o + j]} from a block and
     * {@code g} at {@code [j]} the loops ran scalar, measured 1.3 against 0.1 ns an element).
     */
    private static void forwardFloat(INDArray x, INDArray y, double[] g, double[] b, double eps, float[] stats) {
        int d = g.length;
        long n = x.length() / d;
        boolean centered = b != null;
        FloatBuffer in = x.data().asNioFloat();
        FloatBuffer out = y.data().asNioFloat();
        int inBase = (int) x.offset();
        int outBase = (int) y.offset();
        float[] gf = FloatRows.floats(g);
        float[] bf = centered ? FloatRows.floats(b) : new float[d];
        float[] v = new float[d];
        for (long r = 0; r < n; r++) {
            in.get(inBase + (int) (r * d), v, 0, d);
            float mu = centered ? FloatRows.sum(v, 0, d) / d : 0f;
            float rs = (float) (1.0 / Math.sqrt(FloatRows.centeredSquares(v, 0, d, mu) / d + eps));
            if (stats != null) {
                stats[(int) (2 * r)] = mu;
                stats[(int) (2 * r + 1)] = rs;
            }
            for (int j = 0; j < d; j++) {
                v[j] = (v[j] - mu) * (rs * gf[j]) + bf[j];
            }
            out.put(outBase + (int) (r * d), v, 0, d);
        }
    }

    /**
     * {@link #backward} for float32 arrays, in float32 a row at a time like {@link #forwardFloat}
     * (every array indexed from 0, so that C2 vectorizes the element loops; the two row sums
     * {@code Σ ĝ} and {@code Σ ĝ·x̂} in one pass, {@link FloatRows#sumAndDot}); {@code dg} and
     * {@code db} are summed in float over {@code BLOCK / d} rows, then added to the double totals
     * (neither when {@code dg} is null); the row statistics come from {@code stats} when given.
     */
    private static void backwardFloat(INDArray x, INDArray dy, INDArray dx, double[] g, boolean centered, double eps,
                                      double[] dg, double[] db, float[] stats) {
        int d = g.length;
        long n = x.length() / d;
        FloatBuffer xs = x.data().asNioFloat();
        FloatBuffer dys = dy.data().asNioFloat();
        FloatBuffer dxs = dx.data().asNioFloat();
        int xBase = (int) x.offset();
        int dyBase = (int) dy.offset();
        int dxBase = (int) dx.offset();
        float[] gf = FloatRows.floats(g);
        int rowsPerBlock = Math.max(1, BLOCK / d);
        float[] v = new float[d];
        float[] e = new float[d];
        float[] gh = new float[d];
        float[] dgf = new float[d];
        float[] dbf = new float[d];
        float[] ms = new float[2];
        for (long r0 = 0; r0 < n; r0 += rowsPerBlock) {
            int rows = (int) Math.min(rowsPerBlock, n - r0);
            Arrays.fill(dgf, 0f);
            Arrays.fill(dbf, 0f);
            for (int r = 0; r < rows; r++) {
                long row = r0 + r;
                xs.get(xBase + (int) (row * d), v, 0, d);
                dys.get(dyBase + (int) (row * d), e, 0, d);
                float mu;
                float rs;
                if (stats != null) {
                    mu = stats[(int) (2 * row)];
                    rs = stats[(int) (2 * row + 1)];
                } else {
                    mu = centered ? FloatRows.sum(v, 0, d) / d : 0f;
                    rs = (float) (1.0 / Math.sqrt(FloatRows.centeredSquares(v, 0, d, mu) / d + eps));
                }
                if (dg != null) {
                    for (int j = 0; j < d; j++) {
                        float xh = (v[j] - mu) * rs;
                        float ej = e[j];
                        v[j] = xh;
                        gh[j] = gf[j] * ej;
                        dgf[j] += ej * xh;
                        dbf[j] += ej;
                    }
                } else {
                    for (int j = 0; j < d; j++) {
                        v[j] = (v[j] - mu) * rs;
                        gh[j] = gf[j] * e[j];
                    }
                }
                FloatRows.sumAndDot(gh, v, d, ms);
                float meanG = centered ? ms[0] / d : 0f;
                float meanGx = ms[1] / d;
                for (int j = 0; j < d; j++) {
                    e[j] = rs * (gh[j] - meanG - v[j] * meanGx);
                }
                dxs.put(dxBase + (int) (row * d), e, 0, d);
            }
            if (dg == null) {
                continue;
            }
            for (int j = 0; j < d; j++) {
                dg[j] += dgf[j];
            }
            if (db != null) {
                for (int j = 0; j < d; j++) {
                    db[j] += dbf[j];
                }
            }
        }
    }

    /** {@code Σ v[o, o + d)} with four partial sums. */
    private static double sum(double[] v, int o, int d) {
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int j = 0;
        for (; j + 3 < d; j += 4) {
            s0 += v[o + j];
            s1 += v[o + j + 1];
            s2 += v[o + j + 2];
            s3 += v[o + j + 3];
        }
        for (; j < d; j++) {
            s0 += v[o + j];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /** {@code Σ (v[o, o + d) − mu)²} with four partial sums. */
    private static double centeredSquares(double[] v, int o, int d, double mu) {
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int j = 0;
        for (; j + 3 < d; j += 4) {
            double a = v[o + j] - mu;
            double b = v[o + j + 1] - mu;
            double c = v[o + j + 2] - mu;
            double e = v[o + j + 3] - mu;
            s0 += a * a;
            s1 += b * b;
            s2 += c * c;
            s3 += e * e;
        }
        for (; j < d; j++) {
            double a = v[o + j] - mu;
            s0 += a * a;
        }
        return (s0 + s1) + (s2 + s3);
    }
}
