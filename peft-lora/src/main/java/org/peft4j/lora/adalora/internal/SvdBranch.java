package org.peft4j.lora.adalora.internal;

import java.util.Map;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The AdaLoRA branch in the row form of a frozen layer, shared by the dense and the convolution
 * implementation. With {@code X [rows, n]} the (dropped-out) input rows and the parameters of
 * {@link SvdUpdate}:
 * <pre>
 *   h = X·Aᵀ [rows, r]      u = h ⊙ E      z += κ·u·Bᵀ
 * </pre>
 * Backward, with {@code delta = dL/dz [rows, out]}:
 * <pre>
 *   δu = κ·delta·B          dL/dB = κ·deltaᵀ·u      dL/dE = Σ_rows h ⊙ δu
 *   δh = δu ⊙ E             dL/dA = δhᵀ·X           dL/dX += δh·A   (times the dropout mask)
 * </pre>
 * The orthogonal regularizer is not here: DL4J's updater applies it ({@link OrthogonalRegularization}).
 *
 * <p>Thread-safety: stateless.
 */
public final class SvdBranch {

    private SvdBranch() {
    }

    /** {@code z += κ·((X·Aᵀ) ⊙ E)·Bᵀ}; {@code type} is the workspace array type of the scratch array. */
    public static void forward(INDArray x, Map<String, INDArray> params, double scaling, INDArray z, DataType dt,
                               ArrayType type, LayerWorkspaceMgr mgr) {
        INDArray a = params.get(SvdUpdate.LORA_A);
        INDArray e = params.get(SvdUpdate.LORA_E);
        INDArray b = params.get(SvdUpdate.LORA_B);
        long r = a.size(0);
        INDArray h = mgr.createUninitialized(type, dt, x.size(0), r);
        Nd4j.gemm(x, a, h, false, true, 1.0, 0.0);
        h.muliRowVector(e.reshape(1, r));
        Nd4j.gemm(h, b, z, false, true, scaling, 1.0);
    }

    /**
     * Writes the gradients of {@code A}, {@code E} and {@code B} into their views (and {@code g})
     * and, when {@code epsOut} is not null, adds the branch's input gradient to it, times
     * {@code mask} (the dropout mask as rows) when not null.
     */
    public static void backward(INDArray x, INDArray delta, Map<String, INDArray> params,
                                Map<String, INDArray> gradientViews, double scaling, INDArray mask, Gradient g,
                                INDArray epsOut, DataType dt, LayerWorkspaceMgr mgr) {
        INDArray a = params.get(SvdUpdate.LORA_A);
        INDArray e = params.get(SvdUpdate.LORA_E);
        INDArray b = params.get(SvdUpdate.LORA_B);
        INDArray gA = gradientViews.get(SvdUpdate.LORA_A);
        INDArray gE = gradientViews.get(SvdUpdate.LORA_E);
        INDArray gB = gradientViews.get(SvdUpdate.LORA_B);
        long rows = x.size(0);
        long r = a.size(0);
        INDArray eRow = e.reshape(1, r);

        INDArray h = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dt, rows, r);
        Nd4j.gemm(x, a, h, false, true, 1.0, 0.0);
        INDArray du = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dt, rows, r);
        Nd4j.gemm(delta, b, du, false, false, scaling, 0.0);
        INDArray hdu = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dt, rows, r);
        h.mul(du, hdu);
        gE.assign(hdu.sum(0).reshape(gE.shape()));
        h.muliRowVector(eRow);
        Nd4j.gemm(delta, h, gB, true, false, scaling, 0.0);
        du.muliRowVector(eRow);
        Nd4j.gemm(du, x, gA, true, false, 1.0, 0.0);
        g.gradientForVariable().put(SvdUpdate.LORA_A, gA);
        g.gradientForVariable().put(SvdUpdate.LORA_E, gE);
        g.gradientForVariable().put(SvdUpdate.LORA_B, gB);

        if (epsOut != null) {
            if (mask == null) {
                Nd4j.gemm(du, a, epsOut, false, false, 1.0, 1.0);
            } else {
                INDArray t = mgr.createUninitialized(ArrayType.BP_WORKING_MEM, dt, epsOut.shape());
                Nd4j.gemm(du, a, t, false, false, 1.0, 0.0);
                epsOut.addi(t.muli(mask));
            }
        }
    }
}
