package org.peft4j.lora.internal;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.FrozenLayer;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Reaches the package-private test hooks of the LoRA layer implementations from tests in other
 * packages: DoRA's weight norm, and the pins that make a training forward pass deterministic for
 * {@code GradientCheckUtil} (see {@link Dora}).
 */
public final class LoraTestHooks {

    private LoraTestHooks() {
    }

    private static Layer inner(Layer l) {
        return l instanceof FrozenLayer ? ((FrozenLayer) l).getInsideLayer() : l;
    }

    /** Pins (or unpins) DoRA's norm in every LoRA layer of {@code g} at its current value. */
    public static void pinWeightNorms(ComputationGraph g, boolean pin) {
        for (Layer l : g.getLayers()) {
            Layer i = inner(l);
            if (i instanceof LoraDenseLayerImpl) {
                ((LoraDenseLayerImpl) i).pinWeightNorm(pin);
            } else if (i instanceof LoraEmbeddingLayerImpl) {
                ((LoraEmbeddingLayerImpl) i).pinWeightNorm(pin);
            } else if (i instanceof LoraConvolutionLayerImpl) {
                ((LoraConvolutionLayerImpl) i).pinWeightNorm(pin);
            }
        }
    }

    /** Pins (or unpins) the LoRA dropout mask of every dense and convolution LoRA layer of {@code g}. */
    public static void pinDropoutMasks(ComputationGraph g, boolean pin) {
        for (Layer l : g.getLayers()) {
            Layer i = inner(l);
            if (i instanceof LoraDenseLayerImpl) {
                ((LoraDenseLayerImpl) i).pinDropoutMask(pin);
            } else if (i instanceof LoraConvolutionLayerImpl) {
                ((LoraConvolutionLayerImpl) i).pinDropoutMask(pin);
            }
        }
    }

    /** DoRA's weight norm {@code [nOut]} of LoRA layer {@code name} at the current parameters. */
    public static INDArray weightNorm(ComputationGraph g, String name) {
        Layer i = inner(g.getLayer(name));
        if (i instanceof LoraDenseLayerImpl) {
            return ((LoraDenseLayerImpl) i).weightNorm();
        } else if (i instanceof LoraEmbeddingLayerImpl) {
            return ((LoraEmbeddingLayerImpl) i).weightNorm();
        } else if (i instanceof LoraConvolutionLayerImpl) {
            return ((LoraConvolutionLayerImpl) i).weightNorm();
        }
        throw new IllegalArgumentException("layer " + name + " is no LoRA layer: " + i.getClass().getSimpleName());
    }
}
