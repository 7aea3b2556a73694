package org.peft4j.lora.adalora.internal;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;

/**
 * Reaches the package-private test hooks of the AdaLoRA layer implementations from tests in other
 * packages: the dropout pin that makes a training forward pass deterministic for {@code GradientCheckUtil}.
 */
public final class AdaLoraTestHooks {

    private AdaLoraTestHooks() {
    }

    /** Pins (or unpins) the dropout mask of every AdaLoRA layer of {@code g}. */
    public static void pinDropoutMasks(ComputationGraph g, boolean pin) {
        for (Layer l : g.getLayers()) {
            if (l instanceof AdaLoraDenseLayerImpl d) {
                d.pinDropoutMask(pin);
            } else if (l instanceof AdaLoraConvolutionLayerImpl c) {
                c.pinDropoutMask(pin);
            }
        }
    }
}
