package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.ia3.Ia3Config;

/**
 * The shared targeting value: Hugging Face PEFT's matching of {@code target_modules},
 * {@code exclude_modules} and {@code modules_to_save}, linear-time expressions, and the JSON keys.
 */
class TargetingTest {

    /** {@code in → a.q → a.kq → b.q → b.up → head (output)}: dotted names as in transformers. */
    private static ComputationGraph dotted() {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(3).dataType(DataType.FLOAT)
                .updater(new Adam(1e-2)).graphBuilder().addInputs("in")
                .addLayer("a.q", new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.TANH).build(), "in")
                .addLayer("a.kq", new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.TANH).build(), "a.q")
                .addLayer("b.q", new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.TANH).build(), "a.kq")
                .addLayer("b.up", new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.TANH).build(), "b.q")
                .addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(3)
                        .activation(Activation.SOFTMAX).build(), "b.up")
                .setOutputs("head").build();
        ComputationGraph g = new ComputationGraph(conf);
        g.init();
        return g;
    }

    private static Set<String> adapted(Ia3Config c) {
        return new java.util.TreeSet<>(Peft.wrap(dotted(), c).adaptedLayers().keySet());
    }

    @Test
    void aListEntryChoosesEqualNamesAndDotSuffixesOnly() {
        TargetModules q = TargetModules.names("q");
        assertTrue(q.matches("q", true, false));
        assertTrue(q.matches("a.q", true, false));
        assertFalse(q.matches("a.kq", true, false), "a suffix must start at a '.'");
        assertTrue(TargetModules.names("a.q").matches("x.a.q", true, false));
        assertFalse(TargetModules.names("a.q").matches("b.q", true, false));
        assertEquals(Set.of("a.q", "b.q"), adapted(Ia3Config.builder().targetModules("q").build()));
    }

    @Test
    void aListMustMatchOneLayerOverallNotEveryEntry() {
        assertEquals(Set.of("b.up"), adapted(Ia3Config.builder().targetModules("up", "q_proj").build()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> adapted(Ia3Config.builder().targetModules("q_proj", "v_proj").build()));
        assertTrue(e.getMessage().startsWith("no layer matched targetModules [q_proj, v_proj]; layers are: a.q (DenseLayer)"),
                e.getMessage());
    }

    @Test
    void aStringIsAFullMatchRegularExpression() {
        assertEquals(Set.of("a.q", "b.q"), adapted(Ia3Config.builder().targetModulesRegex("[ab]\\.q").build()));
        assertFalse(TargetModules.regex("q").matches("a.q", true, false), "a regex must match the whole name");
    }

    @Test
    void excludeModulesRemovesTargetsByNameSuffixOrRegex() {
        assertEquals(Set.of("b.q"), adapted(Ia3Config.builder().targetModules("q").excludeModules("a.q").build()));
        assertEquals(Set.of("a.kq", "b.up"), adapted(Ia3Config.builder().targetModulesRegex(".*")
                .excludeModulesRegex(".*\\.q|head").build()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> adapted(Ia3Config.builder().targetModules("q").excludeModules("q").build()));
        assertTrue(e.getMessage().startsWith("no layer left to adapt: targetModules [q] chose only [a.q, b.q], which "
                + "excludeModules [q] or modulesToSave [] exclude; layers are:"), e.getMessage());
    }

    @Test
    void modulesToSaveAreExcludedFromTheTargetsAndTrainInFull() {
        PeftModel p = Peft.wrap(dotted(), Ia3Config.builder().targetModules("q").modulesToSave("b.q").build());
        assertEquals(Set.of("a.q"), p.adaptedLayers().keySet());
        assertEquals(4 + 4 * 4 + 4, p.trainableParameters(), "a.q's scales plus all of b.q");
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> adapted(Ia3Config.builder().targetModules("up").modulesToSave("classifier").build()));
        assertTrue(none.getMessage().startsWith("modulesToSave [classifier]: no layer matched; layers are:"),
                none.getMessage());
        assertEquals(Set.of("a.q"), adapted(Ia3Config.builder().targetModules("a.q").modulesToSave("classifier", "up")
                .build()), "one matching entry is enough, as for target modules");
    }

    @Test
    void expressionsRunOnRe2AndUnsupportedConstructsAreRefusedByName() {
        // Exponential for a backtracking engine; RE2 answers in time linear in the name.
        TargetModules slow = TargetModules.regex("(.*){12}X");
        assertFalse(slow.matches("block0.attention.output.dense.projection.weight.extra", true, false));
        for (String bad : List.of("(a)\\1", "a(?=b)", "(?<!x)y", "[unclosed")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TargetModules.regex(bad));
            assertTrue(e.getMessage().contains("\"" + bad + "\""), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Ia3Config.builder().excludeModulesRegex("(x)\\1"));
    }

    @Test
    void everyScopeRoundTripsThroughItsJsonKeys() {
        Targeting lora = Targeting.builder(Targeting.Scope.TARGETS_AND_BIAS).targetModules(TargetModules.names("q", "v"))
                .excludeModules(TargetModules.regex("x\\..*")).modulesToSave("head").bias(BiasMode.LORA_ONLY).build();
        Map<String, Object> json = new TreeMap<>();
        lora.writeJson(json);
        assertEquals(Map.of("target_modules", List.of("q", "v"), "exclude_modules", "x\\..*",
                "modules_to_save", List.of("head"), "bias", "lora_only"), json);
        assertEquals(lora, Targeting.fromJson(json, Targeting.Scope.TARGETS_AND_BIAS));

        Targeting ia3 = Targeting.builder(Targeting.Scope.TARGETS).targetModules(TargetModules.ALL_LINEAR).build();
        Map<String, Object> ia3Json = new TreeMap<>();
        ia3.writeJson(ia3Json);
        Map<String, Object> expected = new TreeMap<>();
        expected.put("target_modules", "all-linear");
        expected.put("modules_to_save", null);
        assertEquals(expected, ia3Json, "no bias key for a method without the option; no exclude key unless set");
        assertEquals(ia3, Targeting.fromJson(ia3Json, Targeting.Scope.TARGETS));

        Targeting saving = Targeting.ofModulesToSave("head");
        Map<String, Object> savingJson = new TreeMap<>();
        saving.writeJson(savingJson);
        assertEquals(Map.of("modules_to_save", List.of("head")), savingJson);
        assertEquals(saving, Targeting.fromJson(savingJson, Targeting.Scope.MODULES_TO_SAVE));
    }

    @Test
    void optionsOutsideTheScopeOrUnhonourableKeysAreRefused() {
        assertThrows(IllegalStateException.class, () -> Targeting.builder(Targeting.Scope.TARGETS).bias(BiasMode.ALL));
        assertThrows(IllegalStateException.class,
                () -> Targeting.builder(Targeting.Scope.MODULES_TO_SAVE).targetModules(TargetModules.names("q")));
        assertThrows(IllegalStateException.class, () -> Targeting.builder(Targeting.Scope.TARGETS).build(),
                "targeted scopes need target modules");
        AdapterFormatException layers = assertThrows(AdapterFormatException.class, () -> Targeting.fromJson(
                Map.of("target_modules", List.of("q"), "layers_to_transform", List.of(0, 1)), Targeting.Scope.TARGETS));
        assertTrue(layers.getMessage().contains("\"layers_to_transform\""), layers.getMessage());
        AdapterFormatException type = assertThrows(AdapterFormatException.class,
                () -> Targeting.fromJson(Map.of("target_modules", 7), Targeting.Scope.TARGETS));
        assertTrue(type.getMessage().contains("\"target_modules\" must be a list of layer names or a regex string"),
                type.getMessage());
        AdapterFormatException regex = assertThrows(AdapterFormatException.class,
                () -> Targeting.fromJson(Map.of("target_modules", "(q)\\1"), Targeting.Scope.TARGETS));
        assertTrue(regex.getMessage().contains("\"(q)\\1\""), regex.getMessage());
    }

    @Test
    void aTypeFilterIsWrittenAsTheResolvedLayersExactly() {
        Targeting filtered = Targeting.builder(Targeting.Scope.TARGETS).targetModules(TargetModules.ALL_LINEAR)
                .targetTypes(DenseLayer.class).build();
        List<String> layers = List.of("a.q", "x.a.q", "b.up", "head");
        assertEquals(List.of("b.up", "x.a.q"), filtered.targetModulesJson(List.of("x.a.q", "b.up"), layers));
        Object regex = filtered.targetModulesJson(List.of("a.q"), layers);
        assertTrue(regex instanceof String, "the list [a.q] would also choose x.a.q, so a regex is written: " + regex);
        TargetModules back = TargetModules.regex((String) regex);
        assertTrue(back.matches("a.q", true, false));
        assertFalse(back.matches("x.a.q", true, false));
        assertNull(Targeting.ofModulesToSave().targetModules());
    }
}
