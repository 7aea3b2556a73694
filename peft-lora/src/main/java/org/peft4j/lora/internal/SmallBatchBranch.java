package org.peft4j.lora.internal;

import static org.peft4j.core.spi.DenseFloats.colStride;
import static org.peft4j.core.spi.DenseFloats.isDense;
import static org.peft4j.core.spi.DenseFloats.read;
import static org.peft4j.core.spi.DenseFloats.rowStride;
import static org.peft4j.core.spi.DenseFloats.write;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The LoRA branch {@code z += s · (x · A) · B} for a few rows, computed on the heap instead of by
 * two ND4J GEMM calls.
 *
 * <p>Hand-written because at batch 1 the branch is tiny ({@code 2 · r · (nIn + nOut)} flops, about
 * 33 k for d = 1024, r = 8) while each ND4J call costs a fixed 15–35 µs on nd4j-native 1.0.0-M2.1
 * (measured: a {@code [1, 1024] · [1024, 8]} GEMM takes as long as a {@code [1, 1024]} row-vector
 * add). Two such calls per layer cost about 70 µs at d = 1024; here the branch takes 13–19 µs
 * (four bulk copies out of ND4J's buffers, two short loops, one bulk copy back). Above
 * {@link #MAX_WORK} multiply-adds BLAS wins and the caller keeps ND4J.
 *
 * <p>Arrays are copied with {@link org.peft4j.core.spi.DenseFloats}, so parameter views in
 * either ordering work. Only dense float32 matrices are handled; {@link #applies} says whether a
 * call is one of them.
 *
 * <p>Thread-safety: stateless.
 */
final class SmallBatchBranch {
    /** Largest {@code batch · r · (nIn + nOut)} computed here. */
    static final long MAX_WORK = 1L << 16;

    private SmallBatchBranch() {
    }

    /** Whether {@link #addInto} handles these arrays: float32, rank 2, dense, and little work. */
    static boolean applies(INDArray x, INDArray a, INDArray b, INDArray z) {
        if (x.size(0) * a.size(1) * (a.size(0) + b.size(1)) > MAX_WORK) {
            return false;
        }
        return isDense(x) && isDense(a) && isDense(b) && isDense(z);
    }

    /** {@code Σ_t u[uOff + t·uStep] · v[vOff + t·vStep]} for {@code t < len}, four partial sums when both steps are 1. */
    private static float dot(float[] u, int uOff, int uStep, float[] v, int vOff, int vStep, int len) {
        if (uStep == 1 && vStep == 1) {
            float s0 = 0f;
            float s1 = 0f;
            float s2 = 0f;
            float s3 = 0f;
            int t = 0;
            for (; t + 3 < len; t += 4) {
                s0 += u[uOff + t] * v[vOff + t];
                s1 += u[uOff + t + 1] * v[vOff + t + 1];
                s2 += u[uOff + t + 2] * v[vOff + t + 2];
                s3 += u[uOff + t + 3] * v[vOff + t + 3];
            }
            for (; t < len; t++) {
                s0 += u[uOff + t] * v[vOff + t];
            }
            return (s0 + s1) + (s2 + s3);
        }
        float acc = 0f;
        for (int t = 0; t < len; t++) {
            acc += u[uOff + t * uStep] * v[vOff + t * vStep];
        }
        return acc;
    }

    /**
     * {@code z += s · (x · A) · B}: {@code x [batch, nIn]}, {@code A [nIn, r]}, {@code B [r, nOut]},
     * {@code z [batch, nOut]}; call only when {@link #applies} is true.
     */
    static void addInto(INDArray x, INDArray a, INDArray b, double scaling, INDArray z) {
        int batch = (int) x.size(0);
        int nIn = (int) a.size(0);
        int rank = (int) a.size(1);
        int nOut = (int) b.size(1);
        float[] xv = read(x);
        float[] av = read(a);
        float[] bv = read(b);
        float[] zv = read(z);
        int xr = rowStride(x);
        int xc = colStride(x);
        int ar = rowStride(a);
        int ac = colStride(a);
        int br = rowStride(b);
        int bc = colStride(b);
        int zr = rowStride(z);
        int zc = colStride(z);
        float s = (float) scaling;
        float[] h = new float[rank];
        for (int n = 0; n < batch; n++) {
            for (int k = 0; k < rank; k++) {
                h[k] = dot(xv, n * xr, xc, av, k * ac, ar, nIn) * s;
            }
            int zRow = n * zr;
            if (br == 1 && zc == 1) {
                // B's columns are contiguous (DL4J's 'f' order): z[j] += h · B[:, j].
                for (int j = 0; j < nOut; j++) {
                    zv[zRow + j] += dot(h, 0, 1, bv, j * bc, 1, rank);
                }
            } else {
                for (int k = 0; k < rank; k++) {
                    float hk = h[k];
                    int bRow = k * br;
                    for (int j = 0; j < nOut; j++) {
                        zv[zRow + j * zc] += hk * bv[bRow + j * bc];
                    }
                }
            }
        }
        write(z, zv);
    }
}
