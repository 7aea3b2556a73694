package org.peft4j.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.UnaryOperator;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.testing.FamilyCase;

/**
 * AdaLoRA's configuration: every option that cannot be honoured is refused with a message naming
 * it, in the builder and in a PEFT file (where the base model is left as it was), and a saved
 * configuration reads back equal.
 */
class AdaLoraConfigTest {

    private static AdaLoraConfig.Builder valid() {
        return AdaLoraConfig.builder().initR(4).targetR(2).totalStep(100).tinit(10).tfinal(20).targetModules("dense");
    }

    private static void refused(Class<? extends Throwable> type, Executable e, String... fragments) {
        Throwable t = assertThrows(type, e);
        for (String f : fragments) {
            assertTrue(t.getMessage().contains(f), "message names " + f + ": " + t.getMessage());
        }
    }

    @Test
    void theBuilderRefusesWhatThePeftScheduleCannotRun() {
        refused(IllegalArgumentException.class, () -> valid().targetR(5).build(), "targetR (target_r) 5", "initR");
        refused(IllegalArgumentException.class, () -> valid().tinit(80).build(), "tinit 80", "totalStep - tfinal = 80");
        refused(IllegalStateException.class, () -> AdaLoraConfig.builder().targetModules("dense").build(), "totalStep");
        refused(IllegalArgumentException.class, () -> valid().deltaT(0), "deltaT", "got 0");
        refused(IllegalArgumentException.class, () -> valid().beta1(1.0), "beta1", "(0, 1)");
        refused(IllegalArgumentException.class, () -> valid().beta2(0.0), "beta2", "(0, 1)");
        refused(IllegalArgumentException.class, () -> valid().initR(0), "initR", "got 0");
        refused(IllegalArgumentException.class, () -> valid().orthRegWeight(-0.1), "orthRegWeight", "-0.1");
        refused(IllegalArgumentException.class, () -> valid().dropout(1.0), "dropout", "[0, 1)");
        refused(IllegalArgumentException.class, () -> valid().rankPattern("dense", List.of(true, false)).build(),
                "rankPattern of layer \"dense\" has 2 flags", "initR = 4");
    }

    @Test
    void aSavedConfigurationReadsBackEqual(@TempDir Path tmp) throws IOException {
        FamilyCase c = FamilyCase.of("adalora/dense");
        AdaLoraConfig cfg = AdaLoraConfig.builder().initR(3).targetR(1).alpha(6).dropout(0.1).totalStep(40).tinit(5)
                .tfinal(10).deltaT(3).beta1(0.8).beta2(0.9).orthRegWeight(0.25).targetModules("dense").build();
        PeftModel peft = Peft.wrap(c.base(DataType.FLOAT), cfg);
        peft.saveAdapter(tmp);
        PeftModel loaded = Peft.load(c.base(DataType.FLOAT), tmp);
        assertEquals(cfg, loaded.config());
        assertEquals(cfg.toString(), loaded.config().toString());
    }

    /** A copy of the fixture {@code adalora/dense} with its adapter_config.json edited. */
    private static Path edited(Path tmp, UnaryOperator<String> edit) throws IOException {
        FamilyCase c = FamilyCase.of("adalora/dense");
        Path dir = Files.createDirectories(tmp.resolve("adapter"));
        for (String f : List.of("adapter_config.json", "adapter_model.safetensors")) {
            Files.copy(c.dir().resolve(f), dir.resolve(f));
        }
        Path json = dir.resolve("adapter_config.json");
        String before = Files.readString(json, StandardCharsets.UTF_8);
        String after = edit.apply(before);
        assertTrue(!after.equals(before), "the edit applies");
        Files.writeString(json, after, StandardCharsets.UTF_8);
        return dir;
    }

    private static void refusedOnLoad(Path dir, String... fragments) {
        ComputationGraph base = FamilyCase.of("adalora/dense").base(DataType.FLOAT);
        INDArray before = base.params().dup();
        refused(AdapterFormatException.class, () -> Peft.load(base, dir), fragments);
        assertEquals(before, base.params(), "the base model is left as it was");
    }

    @Test
    void aPeftFileWithAnOptionAdaLoraCannotHonourIsRefused(@TempDir Path tmp) throws IOException {
        refusedOnLoad(edited(tmp.resolve("dora"), s -> s.replace("\"use_dora\": false", "\"use_dora\": true")),
                "use_dora");
        refusedOnLoad(edited(tmp.resolve("fan"), s -> s.replace("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true")),
                "fan_in_fan_out");
        refusedOnLoad(edited(tmp.resolve("bias"), s -> s.replace("\"lora_bias\": false", "\"lora_bias\": true")),
                "lora_bias");
        refusedOnLoad(edited(tmp.resolve("alpha"), s -> s.replace("\"lora_alpha\": 4.0", "\"lora_alpha\": 0.0")),
                "lora_alpha");
        refusedOnLoad(edited(tmp.resolve("pattern"), s -> s.replace("\"rank_pattern\": null",
                "\"rank_pattern\": {\"dense.lora_E\": [true, false]}")), "dense", "2");
    }
}
