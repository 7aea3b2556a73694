package org.peft4j.core;

import java.util.Set;

/**
 * A {@link PeftConfig} with no target modules: its method adapts no layer in place. Full
 * fine-tuning and transfer learning only choose what trains; bottleneck adapters, prompt tuning
 * and prefix tuning change the graph's structure instead ({@link #graphEdits}: inserted layers,
 * replaced attention cores). Their {@link #targeting()} has scope
 * {@link Targeting.Scope#MODULES_TO_SAVE} (no targets, no trained biases); this fixes the
 * answers that follow: no target kinds, and {@link #adapt} refused.
 *
 * <p>Thread-safety: implementations must be immutable.
 */
public interface UntargetedConfig extends PeftConfig {

    /** Adapts no layer in place. */
    @Override
    default Set<TargetKind> supportedTargetKinds() {
        return Set.of();
    }

    /** @throws UnsupportedOperationException always: there are no targets, so the core never calls it */
    @Override
    default FrozenBaseLayer adapt(Target target) {
        throw new UnsupportedOperationException(peftType() + " adapts no layer in place");
    }
}
