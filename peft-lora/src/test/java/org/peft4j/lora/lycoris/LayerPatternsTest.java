package org.peft4j.lora.lycoris;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.testing.TinyGraphs;
import org.peft4j.lora.loha.LoHaConfig;
import org.peft4j.lora.lokr.LoKrConfig;

/**
 * Per-layer rank and alpha of LoHa and LoKr ({@code rank_pattern}, {@code alpha_pattern}): keys
 * match a layer name's end at a {@code "."} boundary, the first in sorted order wins, each layer
 * gets its own factor shapes and scaling, and files keep them.
 */
class LayerPatternsTest {

    @Test
    void keysMatchTheEndOfANameAtADotAndTheFirstSortedKeyWins() {
        LayerPatterns p = new LayerPatterns.Builder().rank("q", 4).rank("block\\d+\\.q", 6).rank("b.*", 5)
                .alpha("v", 2).build();
        assertEquals(List.of("b.*", "block\\d+\\.q", "q"), List.copyOf(p.ranks().keySet()));
        assertEquals(4, p.rankFor("attn.q", 8));
        assertEquals(8, p.rankFor("attn.qq", 8), "no match inside a name part");
        assertEquals(5, p.rankFor("block1.q", 8), "\"b.*\" sorts first and matches");
        assertEquals(5, p.rankFor("x.block1.q", 8), "\"b.*\" matches the end \"block1.q\" at a dot boundary too");
        assertEquals(6, new LayerPatterns.Builder().rank("block\\d+\\.q", 6).rank("q", 4).build().rankFor("x.block1.q", 8),
                "of two matching keys the first in sorted order wins");
        assertEquals(2.0, p.alphaFor("attn.v", 8));
        assertEquals(8.0, p.alphaFor("v2", 8));
    }

    static List<PeftConfig> configs() {
        return List.of(
                LoHaConfig.builder().rank(2).alpha(2).rankPattern("output", 1).alphaPattern("dense\\d", 6)
                        .targetModules("dense1", "dense2", "output").build(),
                LoKrConfig.builder().rank(4).alpha(2).rankPattern("dense2", 1).alphaPattern("output", 3)
                        .targetModules("dense1", "dense2", "output").build());
    }

    @Test
    void eachLayerGetsItsRankAndAlphaAndFilesKeepThem(@TempDir Path dir) throws Exception {
        int i = 0;
        for (PeftConfig config : configs()) {
            ComputationGraph base = TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4);
            PeftModel peft = Peft.wrap(base, config);
            Map<String, Integer> ranks = new java.util.TreeMap<>();
            Map<String, Double> alphas = new java.util.TreeMap<>();
            peft.adaptedLayers().forEach((n, l) -> {
                ranks.put(n, ((LycorisLayer) l).adapter().rank());
                alphas.put(n, ((LycorisLayer) l).adapter().alpha());
            });
            if (config instanceof LoHaConfig) {
                assertEquals(Map.of("dense1", 2, "dense2", 2, "output-dense", 1), ranks);
                assertEquals(Map.of("dense1", 6.0, "dense2", 6.0, "output-dense", 2.0), alphas);
            } else {
                assertEquals(Map.of("dense1", 4, "dense2", 1, "output-dense", 4), ranks);
                assertEquals(Map.of("dense1", 2.0, "dense2", 2.0, "output-dense", 3.0), alphas);
            }
            peft.graph().fit(TinyGraphs.classification(DataType.FLOAT, 6, 16, 8, 4));
            Path d = dir.resolve("a" + i++);
            peft.saveAdapter(d);
            PeftModel loaded = Peft.load(TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 5, 8, 16, 4), d);
            assertEquals(config, loaded.config());
            org.nd4j.linalg.api.ndarray.INDArray x = TinyGraphs.classification(DataType.FLOAT, 7, 4, 8, 4).getFeatures();
            assertEquals(peft.graph().outputSingle(x), loaded.graph().outputSingle(x));
        }
    }
}
