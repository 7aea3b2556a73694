package org.peft4j.lora.lycoris;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * The "effective convolution" form of a convolution update shared by LoHa ({@code hada_t1},
 * {@code hada_w1_a}, {@code hada_w1_b}) and LoKr ({@code lokr_t2}, {@code lokr_w2_a},
 * {@code lokr_w2_b}): a core {@code t [r, r, kH, kW]} and two factors, {@code wa [r, out]} and
 * {@code wb [r, in]}, rebuild a kernel
 * <pre>
 *   R[o, c, p] = Σ_{i,j} t[i, j, p] · wa[i, o] · wb[j, c]      (p = a kernel position, K of them)
 *   i.e. per position: R_p = waᵀ · t_p · wb  [out, in]
 * </pre>
 * (PEFT's {@code make_weight_cp}, FedPara's "Proposition 3"). Backward, with {@code dR = dL/dR}:
 * <pre>
 *   d wa = Σ_p (t_p·wb)·dR_pᵀ      d wb = Σ_p (t_pᵀ·wa)·dR_p      d t_p = wa·dR_p·wbᵀ
 * </pre>
 *
 * <p>Thread-safety: stateless.
 */
public final class CpWeight {

    private CpWeight() {
    }

    /** The core as {@code [r, r, K]} ('c'), positions in PyTorch's order ({@code kh·kW + kw}). */
    private static INDArray core3(INDArray t) {
        return t.dup('c').reshape('c', t.size(0), t.size(1), t.length() / (t.size(0) * t.size(1)));
    }

    /** {@code R [out, in, K]} ('c') from {@code t [r, r, ...kernel]}, {@code wa [r, out]}, {@code wb [r, in]}. */
    public static INDArray rebuild(INDArray t, INDArray wa, INDArray wb) {
        INDArray t3 = core3(t);
        int k = (int) t3.size(2);
        INDArray waT = wa.transpose();
        INDArray r = Nd4j.create(wa.dataType(), new long[] {wa.size(1), wb.size(1), k}, 'c');
        for (int p = 0; p < k; p++) {
            INDArray tp = t3.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(p));
            r.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(p)).assign(waT.mmul(tp).mmul(wb));
        }
        return r;
    }

    /**
     * Gradients of {@code t}, {@code wa}, {@code wb} from {@code dR [out, in, K]}, written into
     * {@code dt} (the shape of {@code t}), {@code dwa} and {@code dwb}.
     */
    public static void backward(INDArray t, INDArray wa, INDArray wb, INDArray dR, INDArray dt, INDArray dwa,
                                INDArray dwb) {
        INDArray t3 = core3(t);
        int k = (int) t3.size(2);
        INDArray dR3 = dR.dup('c').reshape('c', wa.size(1), wb.size(1), k);
        INDArray dt3 = Nd4j.create(t.dataType(), new long[] {t3.size(0), t3.size(1), k}, 'c');
        INDArray gwa = Nd4j.zeros(wa.dataType(), wa.shape());
        INDArray gwb = Nd4j.zeros(wb.dataType(), wb.shape());
        for (int p = 0; p < k; p++) {
            INDArray tp = t3.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(p));
            INDArray dRp = dR3.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(p));
            gwa.addi(tp.mmul(wb).mmul(dRp.transpose()));
            gwb.addi(tp.transpose().mmul(wa).mmul(dRp));
            dt3.get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.point(p)).assign(wa.mmul(dRp).mmul(wb.transpose()));
        }
        dt.assign(dt3.reshape('c', t.shape()));
        dwa.assign(gwa);
        dwb.assign(gwb);
    }
}
