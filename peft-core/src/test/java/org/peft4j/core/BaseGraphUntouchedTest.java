package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.layers.BaseLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.TinyGraphs;

/**
 * "{@code graph} itself is never modified" includes its training configuration: the wrapped graph
 * must not share mutable updater objects with the base, or {@code setLearningRate} on the wrapped
 * graph changes the base's learning rate too.
 */
class BaseGraphUntouchedTest {
    private static final double LR = 2e-2;

    @Test
    void settingTheWrappedGraphsLearningRateLeavesTheBasesAlone() {
        List<PeftConfig> configs = List.of(
                Ia3Config.builder().targetModules("dense1", "output").build(),
                FineTuningConfig.transferLearning("output"),
                FineTuningConfig.full());
        for (PeftConfig cfg : configs) {
            ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(LR), 42, 8, 16, 4);
            PeftModel peft = Peft.wrap(base, cfg);
            peft.graph().setLearningRate(0.5);
            assertLearningRate(LR, base, cfg.peftType() + ", base after setLearningRate on the wrapped graph");
            ComputationGraph unloaded = peft.mergeAndUnload();
            unloaded.setLearningRate(0.25);
            assertLearningRate(LR, base, cfg.peftType() + ", base after setLearningRate on mergeAndUnload()'s graph");
            assertLearningRate(0.5, peft.graph(), cfg.peftType() + ", wrapped graph after the same on mergeAndUnload()'s graph");
        }
    }

    private static void assertLearningRate(double expected, ComputationGraph g, String what) {
        for (Layer l : g.getLayers()) {
            if (l.conf().getLayer() instanceof BaseLayer conf && conf.getIUpdater() != null) {
                assertEquals(expected, conf.getIUpdater().getLearningRate(0, 0), 0.0, what + ": layer " + conf.getLayerName());
            }
        }
    }
}
