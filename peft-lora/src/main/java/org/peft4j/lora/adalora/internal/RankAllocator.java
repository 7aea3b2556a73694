package org.peft4j.lora.adalora.internal;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

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
 * {@code B [out, r]}. State is kept in double precision, in JVM arrays: the work is a few passes
 * over the adapter's parameters, cheaper in a loop than in as many small ND4J operations.
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

    /**
     * One layer's {@code A [r, n]}, {@code E [r]} and {@code B [out, r]} (values or gradients), each
     * as its elements in {@code 'f'} order (the order of DL4J's parameter views).
     */
    public record Factors(double[] a, double[] e, double[] b, int rank, int columns, int out) {

        /** Copies of {@code a [r, n]}, {@code e [r]} (or {@code [r, 1]}) and {@code b [out, r]}. */
        public static Factors of(INDArray a, INDArray e, INDArray b) {
            return new Factors(OrthogonalRegularization.fortranOrder(a), OrthogonalRegularization.fortranOrder(e),
                    OrthogonalRegularization.fortranOrder(b), (int) a.size(0), (int) a.size(1), (int) b.size(0));
        }

        double[] get(int factor) {
            return factor == 0 ? a : factor == 1 ? e : b;
        }

        long[] shape(int factor) {
            return factor == 0 ? new long[] {rank, columns} : factor == 1 ? new long[] {rank} : new long[] {out, rank};
        }
    }

    private final int initBudget;
    private final int targetBudget;
    private final int tinit;
    private final int tfinal;
    private final int totalStep;
    private final int deltaT;
    private final double beta1;
    private final double beta2;
    /** Layer → the smoothed importance and uncertainty of its factors. */
    private final Map<String, Factors> avgImportance = new LinkedHashMap<>();
    private final Map<String, Factors> avgUncertainty = new LinkedHashMap<>();

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
    public void updateImportance(String layer, Factors params, Factors grads) {
        Factors avgI = avgImportance.computeIfAbsent(layer, k -> zerosLike(params));
        Factors avgU = avgUncertainty.computeIfAbsent(layer, k -> zerosLike(params));
        for (int t = 0; t < 3; t++) {
            double[] p = params.get(t);
            double[] g = grads.get(t);
            double[] i = avgI.get(t);
            double[] u = avgU.get(t);
            for (int k = 0; k < p.length; k++) {
                double importance = Math.abs(p[k] * g[k]);
                i[k] = beta1 * i[k] + (1 - beta1) * importance;
                u[k] = beta2 * u[k] + (1 - beta2) * Math.abs(importance - i[k]);
            }
        }
    }

    private static Factors zerosLike(Factors f) {
        return new Factors(new double[f.a().length], new double[f.e().length], new double[f.b().length], f.rank(),
                f.columns(), f.out());
    }

    /** The smoothed importance {@code Ī} of one layer's {@code A} (0), {@code E} (1, as {@code [r]}) or {@code B} (2). */
    public INDArray averageImportance(String layer, int factor) {
        Factors f = avgImportance.get(layer);
        return Nd4j.create(f.get(factor), f.shape(factor), 'f');
    }

    /** The uncertainty {@code Ū} of one layer's {@code A} (0), {@code E} (1, as {@code [r]}) or {@code B} (2). */
    public INDArray averageUncertainty(String layer, int factor) {
        Factors f = avgUncertainty.get(layer);
        return Nd4j.create(f.get(factor), f.shape(factor), 'f');
    }

    /** The triplet scores {@code S [r]} of one layer. */
    public double[] tripletScores(String layer) {
        Factors i = avgImportance.get(layer);
        Factors u = avgUncertainty.get(layer);
        int r = i.rank();
        int n = i.columns();
        int out = i.out();
        double[] s = new double[r];
        for (int k = 0; k < r; k++) {
            double a = 0;
            for (int j = 0; j < n; j++) {
                a += i.a()[k + j * r] * u.a()[k + j * r];
            }
            double b = 0;
            for (int o = 0; o < out; o++) {
                b += i.b()[o + k * out] * u.b()[o + k * out];
            }
            s[k] = i.e()[k] * u.e()[k] + a / n + b / out;
        }
        return s;
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
