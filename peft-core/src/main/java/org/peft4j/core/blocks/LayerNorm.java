package org.peft4j.core.blocks;

/**
 * Layer normalization over the feature dimension (Ba et al. 2016), for {@code x [batch, f, time]}
 * or {@code [batch, f]}; statistics per batch element and time step:
 * <pre>
 *   μ = mean_f(x)   σ² = mean_f((x − μ)²)   r = 1/√(σ² + eps)   x̂ = (x − μ)·r   y = g ⊙ x̂ + b
 * </pre>
 * Backward, with {@code ĝ = g ⊙ dy}: {@code dx = r·(ĝ − mean_f(ĝ) − x̂·mean_f(ĝ ⊙ x̂))},
 * {@code dg = Σ dy ⊙ x̂}, {@code db = Σ dy} (sums over batch and time).
 *
 * <p>DL4J 1.0.0-M2.1 has no standalone layer normalization (only the {@code hasLayerNorm} option of
 * its dense layer, which normalizes the pre-activation), hence this layer.
 *
 * <p>Thread-safety: a configuration is not mutated after a graph is built from it.
 */
public class LayerNorm extends Normalization {
    private static final long serialVersionUID = 1L;

    /** The default {@code eps}, as in GPT-2 (BERT uses 1e-12; see {@code Transformers.encoder()}). */
    public static final double DEFAULT_EPS = 1e-5;

    /** For JSON deserialization. */
    protected LayerNorm() {
    }

    /** LayerNorm over {@code size} features with {@code eps = 1e-5}. */
    public LayerNorm(long size) {
        this(size, DEFAULT_EPS);
    }

    public LayerNorm(long size, double eps) {
        super(size, eps);
    }

    @Override
    public boolean centered() {
        return true;
    }
}
