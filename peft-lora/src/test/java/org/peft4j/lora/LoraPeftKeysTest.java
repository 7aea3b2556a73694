package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.BiasMode;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.TargetModules;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.testing.TinyGraphs;

/**
 * Every LoRA {@code adapter_config.json} peft4j writes holds only keys Hugging Face PEFT 0.13's
 * {@code LoraConfig} accepts (the field list committed as {@code peft-0.13-lora-config-fields.txt}; PEFT
 * 0.13 stops with a TypeError on any other key), whatever options the config uses, and per-layer ranks
 * saved in a model's module paths come back as they were.
 */
class LoraPeftKeysTest {

    private static Set<String> peft013() throws Exception {
        Set<String> out = new TreeSet<>();
        for (String line : Files.readAllLines(Path.of(LoraPeftKeysTest.class.getResource(
                "/peft-0.13-lora-config-fields.txt").toURI()), StandardCharsets.UTF_8)) {
            if (!line.startsWith("#") && !line.isBlank()) {
                out.add(line.split("\t")[0]);
            }
        }
        return out;
    }

    private static Map<String, Object> config(Path dir) throws Exception {
        return PeftJson.parseObject(Files.readAllBytes(dir.resolve("adapter_config.json")), "adapter_config.json");
    }

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 3, 6, 8, 3);
    }

    @Test
    void everyWrittenLoraConfigHoldsOnlyPeft013Keys(@TempDir Path dir) throws Exception {
        Set<String> allowed = peft013();
        List<LoraConfig> configs = List.of(
                LoraConfig.builder().rank(2).targetModules("dense1").build(),
                LoraConfig.builder().rank(2).alpha(4).dropout(0.1).useRsLora(true).bias(BiasMode.LORA_ONLY)
                        .targetModules("dense1", "dense2").modulesToSave("output").build(),
                LoraConfig.builder().rank(2).targetModules(TargetModules.ALL_LINEAR).excludeModules("dense0").build(),
                LoraConfig.builder().rank(2).targetModulesRegex("dense[12]").rankPattern("dense2", 4)
                        .alphaPattern("dense1", 3.0).initLoraWeights(LoraInit.GAUSSIAN).build(),
                LoraConfig.builder().rank(2).targetModules("dense1", "dense2").layersToTransform(2).build());
        for (int i = 0; i < configs.size(); i++) {
            Path d = dir.resolve("c" + i);
            Peft.wrap(base(), configs.get(i)).saveAdapter(d);
            Set<String> extra = new TreeSet<>(config(d).keySet());
            extra.removeAll(allowed);
            assertEquals(Set.of(), extra, configs.get(i) + ": keys PEFT 0.13's LoraConfig does not accept");
        }
        assertEquals(List.of("dense1", "dense2"), config(dir.resolve("c2")).get("target_modules"),
                "all-linear minus an exclusion is written as the layers it leaves");
    }

    @Test
    void perLayerRanksSavedInModulePathsComeBack(@TempDir Path dir) throws Exception {
        ModuleNames names = ModuleNames.builder().map("model.layers.0.mlp.up_proj", "dense0")
                .map("model.layers.0.mlp.down_proj", "dense1").map("model.layers.1.mlp.down_proj", "dense2")
                .map("lm_head", "output").build();
        LoraConfig c = LoraConfig.builder().rank(2).alpha(4).targetModules("dense1", "dense2").rankPattern("dense2", 5)
                .alphaPattern("dense1", 7.0).build();
        PeftModel peft = Peft.wrap(base(), c);
        peft.saveAdapter(dir, names);
        Map<String, Object> json = config(dir);
        assertEquals(List.of("down_proj"), json.get("target_modules"));
        assertEquals(Map.of("model\\.layers\\.1\\.mlp\\.down_proj", 5), json.get("rank_pattern"));
        assertEquals(Map.of("model\\.layers\\.0\\.mlp\\.down_proj", 7.0), json.get("alpha_pattern"));
        LoraConfig back = (LoraConfig) Peft.load(base(), dir, names).config();
        assertEquals(5, back.rankFor("dense2"));
        assertEquals(2, back.rankFor("dense1"));
        assertEquals(7.0, back.alphaFor("dense1"));
        assertEquals(4.0, back.alphaFor("dense2"));
    }
}
