package org.peft4j.core.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.DoubleSupplier;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Central differences of an objective computed outside DL4J's loss layers (so {@code GradientCheckUtil},
 * which differentiates the graph's own score, cannot check it), with the thresholds of
 * {@link GradientChecks}: {@code eps = 1e-6}, relative error at most {@code 1e-5} above an absolute
 * floor of {@code 1e-9}, every trainable parameter. Run in double precision.
 */
public final class FiniteDifferences {

    private FiniteDifferences() {
    }

    /**
     * The parameters of {@code g} whose entry of {@code analytic} (flat, {@code g.params()} order)
     * disagrees with the central difference of {@code loss}; empty when all agree. Each entry of
     * {@code g.params()} is moved by {@code ±eps} and restored.
     */
    public static List<String> mismatches(ComputationGraph g, INDArray analytic, DoubleSupplier loss) {
        INDArray p = g.params();
        if (p.length() != analytic.length()) {
            throw new IllegalArgumentException(p.length() + " parameters but a gradient of " + analytic.length());
        }
        double eps = 1e-6;
        List<String> bad = new ArrayList<>();
        for (long i = 0; i < p.length(); i++) {
            double orig = p.getDouble(i);
            p.putScalar(i, orig + eps);
            double plus = loss.getAsDouble();
            p.putScalar(i, orig - eps);
            double minus = loss.getAsDouble();
            p.putScalar(i, orig);
            double numeric = (plus - minus) / (2 * eps);
            double a = analytic.getDouble(i);
            double abs = Math.abs(a - numeric);
            double rel = abs / (Math.abs(a) + Math.abs(numeric));
            if (abs > 1e-9 && rel > 1e-5) {
                bad.add(String.format(Locale.ROOT, "param %d: analytic %.10g, numeric %.10g (relative error %.3g)", i, a,
                        numeric, rel));
            }
        }
        return bad;
    }

    /** How many entries of {@code gradient} are larger than {@code 1e-6} in magnitude (a check on zeros passes trivially). */
    public static long nonZero(INDArray gradient) {
        long n = 0;
        for (long i = 0; i < gradient.length(); i++) {
            if (Math.abs(gradient.getDouble(i)) > 1e-6) {
                n++;
            }
        }
        return n;
    }
}
