package org.peft4j.core.blocks;

/**
 * Root-mean-square normalization over the feature dimension (Zhang &amp; Sennrich 2019), for
 * {@code x [batch, f, time]} or {@code [batch, f]}; no centering and no bias:
 * <pre>
 *   r = 1/√(mean_f(x²) + eps)   x̂ = x·r   y = g ⊙ x̂
 * </pre>
 * Backward, with {@code ĝ = g ⊙ dy}: {@code dx = r·(ĝ − x̂·mean_f(ĝ ⊙ x̂))}, {@code dg = Σ dy ⊙ x̂}.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public class RmsNorm extends Normalization {
    private static final long serialVersionUID = 1L;

    /** The default {@code eps}, as in LLaMA. */
    public static final double DEFAULT_EPS = 1e-6;

    /** For JSON deserialization. */
    protected RmsNorm() {
    }

    /** RMSNorm over {@code size} features with {@code eps = 1e-6}. */
    public RmsNorm(long size) {
        this(size, DEFAULT_EPS);
    }

    public RmsNorm(long size, double eps) {
        super(size, eps);
    }

    @Override
    public boolean centered() {
        return false;
    }
}
