package org.peft4j.lora.adalora.internal;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * AdaLoRA's rank allocation as Hugging Face PEFT computes it ({@code RankAllocator} and
 * {@code AdaLoraModel.update_and_allocate}), apart from DL4J: the budget schedule, the smoothed
 * importance of every parameter element, the triplet scores and the choice of triplets to keep.
 *
 * <p>Importance of an element with value {@code p} (after the optimizer step) and gradient
 * {@code g} (of that step, before the update): {@code I = |p·g|}, smoothed
 * {@code Ī ← β1·Ī + (1 − β1)·I} and its uncertainty {@code Ū ← β2·Ū + (1 − β2)·|I − Ī|} (with the new
 * {@code Ī}); both start at 0, no bias correction. Element score {@code Ī·Ū}; triplet {@code i} of a
 * layer scores {@code S_i = score(E_i) + mean_j score(A_ij) + mean_o score(B_oi)}. Masking to a
 * budget keeps the triplets scoring above the {@code (init_bgt − budget)}-th smallest score of all
 * layers (ties at the threshold are all dropped, as in PEFT); with nothing to drop
 * ({@code budget ≥ init_bgt}, e.g. {@code init_r = target_r}, where PEFT's {@code kthvalue} fails)
 * it keeps every triplet.
 *
 * <p>Parameters are in PEFT's orientation: {@code A [r, n]}, {@code E [r]} (or {@code [r, 1]}),
 * {@code B [out, r]}. State is kept in double precision.
 *
 * <p>Thread-safety: not thread-safe; one training loop uses it.
 */
public final class RankAllocator {

    /** What {@code update_and_allocate} does at a step. */
    public enum Action {
        /** Update the importance. */
        UPDATE,
        /** Update the importance, then mask to the schedule's budget. */
        UPDATE_AND_MASK,
        /** Mask to the final budget with the importance so far, fix that rank pattern and reset the importance. */
        FINAL_MASK,
        /** Apply the fixed rank pattern again (pruned singular values are trained by the optimizer meanwhile). */
        APPLY_FIXED
    }

    /** The schedule's budget at a step and whether PEFT masks at that step (before its final step). */
    public record Budget(int budget, boolean mask) {
    }

    private final int initBudget;
    private final int targetBudget;
    private final int tinit;
    private final int tfinal;
    private final int totalStep;
    private final int deltaT;
    private final double beta1;
    private final double beta2;
    /** Layer → {A, E, B} smoothed importance and uncertainty. */
    private final Map<String, INDArray[]> avgImportance = new LinkedHashMap<>();
    private final Map<String, INDArray[]> avgUncertainty = new LinkedHashMap<>();

    /**
     * @param initBudget {@code init_bgt}: triplets at the start ({@code init_r} times the layers)
     * @param targetBudget {@code target_bgt}: {@code target_r} times the layers
     */
    public RankAllocator(int initBudget, int targetBudget, int tinit, int tfinal, int totalStep, int deltaT, double beta1,
                         double beta2) {
        this.initBudget = initBudget;
        this.targetBudget = targetBudget;
        this.tinit = tinit;
        this.tfinal = tfinal;
        this.totalStep = totalStep;
        this.deltaT = deltaT;
        this.beta1 = beta1;
        this.beta2 = beta2;
    }

    /**
     * PEFT's {@code budget_schedule(step)}: {@code init_bgt} up to {@code tinit}; then falling as a
     * cubic, {@code int((init_bgt − target_bgt)·(1 − (step − tinit)/(T − tfinal − tinit))³ + target_bgt)},
     * masking every {@code deltaT}-th step; {@code target_bgt} (masking) after {@code T − tfinal}.
     */
    public Budget schedule(int step) {
        if (step <= tinit) {
            return new Budget(initBudget, false);
        }
        if (step > totalStep - tfinal) {
            return new Budget(targetBudget, true);
        }
        double mul = 1 - (double) (step - tinit) / (totalStep - tfinal - tinit);
        return new Budget((int) ((initBudget - targetBudget) * Math.pow(mul, 3) + targetBudget), step % deltaT == 0);
    }

    /** What PEFT's {@code update_and_allocate(step)} does at {@code step} (0 for the first optimizer step). */
    public Action action(int step) {
        int end = totalStep - tfinal;
        if (step < end) {
            return schedule(step).mask() ? Action.UPDATE_AND_MASK : Action.UPDATE;
        }
        return step == end ? Action.FINAL_MASK : Action.APPLY_FIXED;
    }

    /**
     * Updates the importance of one layer's elements.
     *
     * @param params {@code A, E, B} after the optimizer step
     * @param grads their gradients of that step (task loss and regularizer, before the updater)
     */
    public void updateImportance(String layer, INDArray[] params, INDArray[] grads) {
        INDArray[] avgI = avgImportance.computeIfAbsent(layer, k -> zerosLike(params));
        INDArray[] avgU = avgUncertainty.computeIfAbsent(layer, k -> zerosLike(params));
        for (int t = 0; t < 3; t++) {
            INDArray p = flatE(params[t], t).castTo(DataType.DOUBLE);
            INDArray g = flatE(grads[t], t).castTo(DataType.DOUBLE);
            INDArray importance = Transforms.abs(p.mul(g), false);
            avgI[t].muli(beta1).addi(importance.mul(1 - beta1));
            avgU[t].muli(beta2).addi(Transforms.abs(importance.sub(avgI[t]), false).muli(1 - beta2));
        }
    }

    private static INDArray flatE(INDArray a, int t) {
        return t == 1 ? a.reshape(a.length()) : a;
    }

    private static INDArray[] zerosLike(INDArray[] params) {
        INDArray[] z = new INDArray[3];
        for (int t = 0; t < 3; t++) {
            z[t] = Nd4j.zeros(DataType.DOUBLE, flatE(params[t], t).shape());
        }
        return z;
    }

    /** The smoothed importance {@code Ī} of one layer's {@code A} (0), {@code E} (1, as {@code [r]}) or {@code B} (2). */
    public INDArray averageImportance(String layer, int factor) {
        return avgImportance.get(layer)[factor];
    }

    /** The uncertainty {@code Ū} of one layer's {@code A} (0), {@code E} (1, as {@code [r]}) or {@code B} (2). */
    public INDArray averageUncertainty(String layer, int factor) {
        return avgUncertainty.get(layer)[factor];
    }

    /** The triplet scores {@code S [r]} of one layer. */
    public double[] tripletScores(String layer) {
        INDArray[] i = avgImportance.get(layer);
        INDArray[] u = avgUncertainty.get(layer);
        INDArray s = i[1].mul(u[1]).addi(i[0].mul(u[0]).mean(1)).addi(i[2].mul(u[2]).mean(0));
        return s.toDoubleVector();
    }

    /** The layers whose importance is tracked, in the order they were first updated. */
    public Iterable<String> layers() {
        return avgImportance.keySet();
    }

    /**
     * The triplets to keep for {@code budget} over every tracked layer (PEFT's {@code mask_to_budget}):
     * layer → {@code init_r} flags. Layers with no importance yet keep everything.
     */
    public Map<String, boolean[]> maskToBudget(int budget) {
        Map<String, double[]> scores = new LinkedHashMap<>();
        int total = 0;
        for (String l : avgImportance.keySet()) {
            double[] s = tripletScores(l);
            scores.put(l, s);
            total += s.length;
        }
        int k = initBudget - budget;
        double threshold = Double.NEGATIVE_INFINITY;
        if (k > 0 && total > 0) {
            double[] all = new double[total];
            int o = 0;
            for (double[] s : scores.values()) {
                System.arraycopy(s, 0, all, o, s.length);
                o += s.length;
            }
            Arrays.sort(all);
            threshold = all[Math.min(k, total) - 1];
        }
        Map<String, boolean[]> keep = new LinkedHashMap<>();
        for (Map.Entry<String, double[]> e : scores.entrySet()) {
            boolean[] b = new boolean[e.getValue().length];
            for (int i = 0; i < b.length; i++) {
                b[i] = !(e.getValue()[i] <= threshold);
            }
            keep.put(e.getKey(), b);
        }
        return keep;
    }

    /** Forgets the importance (PEFT's {@code reset_ipt}, after the final allocation). */
    public void reset() {
        avgImportance.clear();
        avgUncertainty.clear();
    }
}
