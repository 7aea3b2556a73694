package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.deeplearning4j.nn.conf.layers.LSTM;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.BiasMode;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.testing.TinyGraphs;

/** Bad input gets a clear exception and changes nothing (issue #2, item 8). */
class LoraValidationTest {

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    private static <T extends Throwable> T rejects(Class<T> type, String phrase, org.junit.jupiter.api.function.Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage().contains(phrase), "message should contain \"" + phrase + "\": " + e.getMessage());
        return e;
    }

    @Test
    void rankAlphaAndDropoutAreCheckedInTheSetters() {
        rejects(IllegalArgumentException.class, "rank must be positive; got 0", () -> LoraConfig.builder().rank(0));
        rejects(IllegalArgumentException.class, "rank must be positive; got -3", () -> LoraConfig.builder().rank(-3));
        rejects(IllegalArgumentException.class, "alpha must be positive", () -> LoraConfig.builder().alpha(0));
        rejects(IllegalArgumentException.class, "alpha must be positive", () -> LoraConfig.builder().alpha(Double.NaN));
        rejects(IllegalArgumentException.class, "dropout must be in [0, 1); got 1.0", () -> LoraConfig.builder().dropout(1.0));
        rejects(IllegalArgumentException.class, "dropout must be in [0, 1); got -0.1", () -> LoraConfig.builder().dropout(-0.1));
        rejects(IllegalStateException.class, "targetModules must be set", () -> LoraConfig.builder().build());
        rejects(IllegalStateException.class, "already set", () -> LoraConfig.builder().targetModules("a").targetModules("b"));
        rejects(IllegalArgumentException.class, "the regular expression \"dense[\" is invalid", () -> LoraConfig.builder().targetModulesRegex("dense["));
        rejects(IllegalArgumentException.class, "given twice", () -> LoraConfig.builder().targetModules("a", "a"));
    }

    @Test
    void configsAreValuesWithEveryFieldInToString() {
        LoraConfig a = LoraConfig.builder().rank(4).alpha(8).dropout(0.05).targetModules("dense1")
                .modulesToSave("output").bias(BiasMode.LORA_ONLY).useRsLora(true).build();
        LoraConfig b = a.toBuilder().build();
        assertEquals(a, b);
        assertEquals(a.hashCode(), b.hashCode());
        assertNotEquals(a, a.toBuilder().rank(5).build());
        assertEquals("LoraConfig(rank=4, alpha=8.0, dropout=0.05, targetModules=[dense1], targetTypes=[], "
                + "modulesToSave=[output], bias=lora_only, useRsLora=true, useDora=false, initLoraWeights=KAIMING_UNIFORM)",
                a.toString());
        assertNotEquals(a, a.toBuilder().useDora(true).build());
        assertNotEquals(a.layoutSignature(), a.toBuilder().useDora(true).build().layoutSignature(),
                "DoRA adds a parameter per layer: another layout");
        assertEquals(8 / Math.sqrt(4), a.scaling(), 0.0);
        assertEquals(2.0, a.toBuilder().useRsLora(false).build().scaling(), 0.0);
    }

    private static void assertUnchanged(ComputationGraph g, INDArray params, String json) {
        assertEquals(params, g.params());
        assertEquals(json, g.getConfiguration().toJson());
    }

    @Test
    void wrapFailuresExplainAndLeaveTheGraphAlone() {
        ComputationGraph g = base();
        INDArray params = g.params().dup();
        String json = g.getConfiguration().toJson();

        rejects(IllegalArgumentException.class,
                "no layer matched targetModules [q_proj, v_proj]; layers are: dense0 (DenseLayer), "
                        + "dense1 (DenseLayer), dense2 (DenseLayer), output (OutputLayer)",
                () -> Peft.wrap(g, LoraConfig.builder().targetModules("q_proj", "v_proj").build()));
        rejects(IllegalArgumentException.class, "no layer matched targetModules regex(attn.*); layers are: dense0 (DenseLayer)",
                () -> Peft.wrap(g, LoraConfig.builder().targetModulesRegex("attn.*").build()));
        rejects(IllegalArgumentException.class, "with targetTypes [LSTM]",
                () -> Peft.wrap(g, LoraConfig.builder().targetModules(TargetModules.ALL_LINEAR).targetTypes(LSTM.class).build()));
        rejects(IllegalArgumentException.class, "modulesToSave [head]: no layer matched; layers are: "
                        + "dense0 (DenseLayer)",
                () -> Peft.wrap(g, LoraConfig.builder().targetModules("dense1").modulesToSave("head").build()));
        rejects(IllegalArgumentException.class, "no layer left to adapt: targetModules [dense1] chose only [dense1], "
                        + "which excludeModules [] or modulesToSave [dense1] exclude",
                () -> Peft.wrap(g, LoraConfig.builder().targetModules("dense1").modulesToSave("dense1").build()));
        rejects(NullPointerException.class, "base model must not be null",
                () -> Peft.wrap((ComputationGraph) null, LoraConfig.builder().targetModules("dense1").build()));
        rejects(NullPointerException.class, "config must not be null", () -> Peft.wrap(g, (PeftConfig) null));
        assertUnchanged(g, params, json);
    }

    @Test
    void unsupportedTargetTypeNamesTheSupportedTypes() {
        ComputationGraph seq = TinyGraphs.sequence(DataType.FLOAT, new Adam(1e-2), 3, 5, 8, 3);
        INDArray params = seq.params().dup();
        String json = seq.getConfiguration().toJson();
        rejects(IllegalArgumentException.class, "target module \"lstm\" is a LSTM, which is of no target kind, and "
                        + "LORA adapts DENSE (DenseLayer, Dense, OutputLayer, RnnOutputLayer), EMBEDDING (EmbeddingLayer, "
                        + "EmbeddingSequenceLayer), CONVOLUTION (ConvolutionLayer, Convolution1DLayer)",
                () -> Peft.wrap(seq, LoraConfig.builder().targetModules("lstm").build()));
        assertUnchanged(seq, params, json);
    }

    @Test
    void loraAdaptsTheDecodersTokenEmbeddingAsAnEmbeddingTarget() {
        ComputationGraph decoder = org.peft4j.core.testing.TinyDecoders.decoder(DataType.FLOAT, new Adam(1e-2), 3, 7, 4,
                1, 8);
        PeftModel p = Peft.wrap(decoder, LoraConfig.builder().targetModules("embed.tokens").build());
        assertTrue(p.adaptedLayers().get("embed.tokens") instanceof LoraEmbeddingLayer, p.adaptedLayers().toString());
    }

    @Test
    void typeFilterNarrowsTargets() {
        PeftModel p = Peft.wrap(base(), LoraConfig.builder().targetModulesRegex(".*").targetTypes(OutputLayer.class).build());
        assertEquals(java.util.Set.of("output-dense"), p.adaptedLayers().keySet());
    }

    @Test
    void wrappingAWrappedGraphIsRefused() {
        PeftModel p = Peft.wrap(base(), LoraConfig.builder().targetModules("dense1").build());
        rejects(IllegalArgumentException.class, "the graph is already wrapped",
                () -> Peft.wrap(p.graph(), LoraConfig.builder().targetModules("dense2").build()));
    }
}
