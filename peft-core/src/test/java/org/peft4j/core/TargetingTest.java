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
        AdapterFormatException parameters = assertThrows(AdapterFormatException.class, () -> Targeting.fromJson(
                Map.of("target_modules", List.of("q"), "target_parameters", List.of("q.weight")), Targeting.Scope.TARGETS));
        assertTrue(parameters.getMessage().startsWith("\"target_parameters\""), parameters.getMessage());
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
        Map<String, Object> json = new TreeMap<>();
        filtered.writeResolvedJson(json, List.of("x.a.q", "b.up"), layers);
        assertEquals(List.of("b.up", "x.a.q"), json.get("target_modules"));
        filtered.writeResolvedJson(json, List.of("a.q"), layers);
        Object regex = json.get("target_modules");
        assertTrue(regex instanceof String, "the list [a.q] would also choose x.a.q, so a regex is written: " + regex);
        TargetModules back = TargetModules.regex((String) regex);
        assertTrue(back.matches("a.q", true, false));
        assertFalse(back.matches("x.a.q", true, false));
        assertNull(Targeting.ofModulesToSave().targetModules());
    }

    /** {@code in → m.layers.0.q → m.layers.0.v → m.layers.1.q → m.layers.1.v → m.layers.12.q → head}. */
    private static ComputationGraph layered() {
        ComputationGraphConfiguration.GraphBuilder g = new NeuralNetConfiguration.Builder().seed(3)
                .dataType(DataType.FLOAT).updater(new Adam(1e-2)).graphBuilder().addInputs("in");
        String prev = "in";
        for (String n : List.of("m.layers.0.q", "m.layers.0.v", "m.layers.1.q", "m.layers.1.v", "m.layers.12.q")) {
            g.addLayer(n, new DenseLayer.Builder().nIn(4).nOut(4).activation(Activation.TANH).build(), prev);
            prev = n;
        }
        g.addLayer("head", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(4).nOut(3)
                .activation(Activation.SOFTMAX).build(), prev);
        ComputationGraph graph = new ComputationGraph(g.setOutputs("head").build());
        graph.init();
        return graph;
    }

    private static Set<String> adaptedOn(ComputationGraph g, Ia3Config c) {
        return new java.util.TreeSet<>(Peft.wrap(g, c).adaptedLayers().keySet());
    }

    @Test
    void layersToTransformKeepsTheListedLayerIndicesAsPeftReadsThem() {
        assertEquals(Set.of("m.layers.1.q", "m.layers.12.q"), adaptedOn(layered(), Ia3Config.builder().targetModules("q")
                .layersToTransform(1, 12).build()), "the first number after any name part");
        assertEquals(Set.of("m.layers.0.q", "m.layers.0.v"), adaptedOn(layered(), Ia3Config.builder().targetModules("q", "v")
                .layersToTransform(0).layersPattern("layers").build()), "the number after layers.");
        assertEquals(Set.of("m.layers.1.v"), adaptedOn(layered(), Ia3Config.builder().targetModules("m.layers.1.v", "q")
                .layersToTransform(7).build()), "a name equal to an entry is chosen whatever its index");
        assertEquals(Set.of("m.layers.0.q", "m.layers.1.q", "m.layers.12.q"), adaptedOn(layered(), Ia3Config.builder()
                .targetModulesRegex(".*\\.q").layersToTransform(1).build()), "a regex ignores the option, as in PEFT");
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> adaptedOn(layered(),
                Ia3Config.builder().targetModules("q").layersToTransform(5).layersPattern("layers").build()));
        assertTrue(none.getMessage().startsWith("no layer matched targetModules [q] in layersToTransform [5] after "
                + "[layers]; layers are:"), none.getMessage());
        assertThrows(IllegalStateException.class, () -> Ia3Config.builder().targetModules("q").layersPattern("layers")
                .build(), "a pattern without indices");
        assertThrows(IllegalArgumentException.class, () -> Ia3Config.builder().layersToTransform(1, 1));
    }

    @Test
    void layersToTransformRoundTripsThroughItsJsonKeys() {
        Map<String, Object> json = new TreeMap<>(Map.of("target_modules", List.of("q"), "layers_to_transform", 5));
        Targeting one = Targeting.fromJson(json, Targeting.Scope.TARGETS);
        assertEquals(List.of(5), one.layersToTransform(), "one integer, as PEFT allows");
        json.put("layers_pattern", "layers");
        json.put("layers_to_transform", List.of(0, 2));
        Targeting t = Targeting.fromJson(json, Targeting.Scope.TARGETS);
        Map<String, Object> out = new TreeMap<>();
        t.writeJson(out);
        assertEquals(List.of(0, 2), out.get("layers_to_transform"));
        assertEquals("layers", out.get("layers_pattern"));
        assertEquals(t, Targeting.fromJson(out, Targeting.Scope.TARGETS));
        json.put("layers_to_transform", List.of());
        assertNull(Targeting.fromJson(json, Targeting.Scope.TARGETS).layersToTransform(), "an empty list is all layers");
    }

    @Test
    void aModuleToSaveEntryMatchesTheEndOfALayerOrOfAModuleContainingIt() {
        List<String> e = List.of("classifier");
        assertTrue(TargetModules.matchesModuleToSave(e, "classifier"));
        assertTrue(TargetModules.matchesModuleToSave(e, "pre_classifier"), "no '.' needed, as PEFT's endswith");
        assertTrue(TargetModules.matchesModuleToSave(e, "classifier.dense"), "inside the module classifier");
        assertTrue(TargetModules.matchesModuleToSave(e, "roberta.classifier.out_proj"));
        assertFalse(TargetModules.matchesModuleToSave(e, "classifiers.dense"));
        assertFalse(TargetModules.matchesModuleToSave(e, "classifier_head"));
        assertEquals(Set.of("a.q"), adapted(Ia3Config.builder().targetModules("q").modulesToSave("b").build()),
                "b.q sits in module b: saved, so not a target");
    }

    @Test
    void repeatedModulesToSaveOfAFileAreOneAndPromptLearningWritesNoEmptyList() {
        Targeting t = Targeting.fromJson(Map.of("target_modules", List.of("q"), "modules_to_save",
                List.of("classifier", "classifier", "score")), Targeting.Scope.TARGETS);
        assertEquals(List.of("classifier", "score"), t.modulesToSave());
        Map<String, Object> json = new TreeMap<>();
        Targeting.ofModulesToSave().writeJson(json);
        assertEquals(Map.of(), json, "PEFT's prompt configs before 0.17 refuse modules_to_save, even null");
    }

    @Test
    void excludeModulesIsWrittenAsTheResolvedTargetsForPeftBefore014() {
        Targeting t = Targeting.builder(Targeting.Scope.TARGETS_AND_BIAS).targetModules(TargetModules.names("q"))
                .excludeModules(TargetModules.names("a.q")).build();
        Map<String, Object> json = new TreeMap<>();
        t.writeResolvedJson(json, List.of("b.q"), List.of("a.q", "a.kq", "b.q", "b.up", "head"));
        assertEquals(List.of("b.q"), json.get("target_modules"));
        assertFalse(json.containsKey("exclude_modules"));
    }
}
