package org.peft4j.core;

import java.util.Set;

/**
 * A {@link PeftConfig} with no target modules: its method adapts no layer in place. Full
 * fine-tuning and transfer learning only choose what trains; bottleneck adapters, prompt tuning
 * and prefix tuning change the graph's structure instead ({@link #graphEdits}: inserted layers,
 * replaced attention cores). This fixes the answers they share: no targets, no target types, no
 * trained biases, and {@link #adaptDense} refused.
 *
 * <p>Thread-safety: implementations must be immutable.
 */
public interface UntargetedConfig extends PeftConfig {

    /** Adapts no layer in place: null. */
    @Override
    default TargetModules targetModules() {
        return null;
    }

    @Override
    default Set<Class<? extends org.deeplearning4j.nn.conf.layers.Layer>> targetTypes() {
        return Set.of();
    }

    @Override
    default BiasMode bias() {
        return BiasMode.NONE;
    }

    /** @throws UnsupportedOperationException always: {@link #targetModules()} is null, so the core never calls it */
    @Override
    default FrozenDenseLayer adaptDense(DenseTarget target) {
        throw new UnsupportedOperationException(peftType() + " adapts no layer in place");
    }
}
