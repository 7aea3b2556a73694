package org.peft4j.examples.minilm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.blocks.Transformers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The MiniLM cache: the first load converts and writes one zip named by the ONNX file's hash, the
 * second restores it with identical outputs, a head can be added over the pretrained weights, and
 * the tokenizer file is served from the cache directory.
 */
class MiniLmTest {
    private static final Logger LOG = LoggerFactory.getLogger(MiniLmTest.class);

    @BeforeAll
    static void floats() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    @Test
    void secondLoadRestoresTheCachedGraphWithIdenticalOutputs(@TempDir Path dir) throws Exception {
        MiniLm mini = new MiniLm(dir.resolve("cache"));
        String hash = MiniLm.modelHash();
        assertEquals(16, hash.length());
        assertEquals(dir.resolve("cache").resolve("all-minilm-l6-v2-" + hash + ".zip"), mini.cachedGraphFile());
        assertFalse(Files.exists(mini.cachedGraphFile()));

        long t0 = System.nanoTime();
        ComputationGraph converted = mini.load();
        long t1 = System.nanoTime();
        assertTrue(Files.isRegularFile(mini.cachedGraphFile()));
        try (Stream<Path> files = Files.list(dir.resolve("cache"))) {
            assertEquals(List.of(mini.cachedGraphFile()), files.toList(), "no temporary file left behind");
        }
        ComputationGraph restored = mini.load();
        long t2 = System.nanoTime();
        LOG.info("MiniLM: convert + cache {} ms, restore {} ms, cache file {} MB", (t1 - t0) / 1_000_000,
                (t2 - t1) / 1_000_000, Files.size(mini.cachedGraphFile()) >> 20);

        HuggingFaceTokenizer tok = HuggingFaceTokenizer.newInstance(mini.tokenizerFile());
        long[][][] tm = MiniLmParityTest.tokenize(tok, MiniLmParityTest.SENTENCES.subList(0, 12));
        INDArray a = MiniLmParityTest.ourPooled(converted, tm[0], tm[1]);
        INDArray b = MiniLmParityTest.ourPooled(restored, tm[0], tm[1]);
        assertEquals(a, b);
        assertEquals(converted.params(), restored.params());
        assertEquals(converted.getConfiguration().toJson(), restored.getConfiguration().toJson());
    }

    @Test
    void aHeadCanBeAddedOverThePretrainedWeights(@TempDir Path dir) throws Exception {
        MiniLm mini = new MiniLm(dir);
        ComputationGraph base = mini.load();
        ComputationGraph withHead = mini.load(b -> b.classes(2).seed(1));
        assertEquals(List.of(Transformers.CLASSIFIER), withHead.getConfiguration().getNetworkOutputs());
        assertEquals(base.numParams() + 384 * 2 + 2, withHead.numParams());
        INDArray x = Nd4j.createFromArray(new float[][] {{101, 7592, 2088, 102}});
        INDArray pooled = withHead.feedForward(x, false).get(Transformers.POOL);
        assertEquals(base.outputSingle(x), pooled);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> mini.load(b -> b.dModel(192)));
        assertTrue(e.getMessage().contains("did customize change a size?"), e.getMessage());
    }

    @Test
    void cacheDirectoryDefaultsToUserCacheAndFollowsTheSystemProperty() {
        String old = System.getProperty(MiniLm.CACHE_PROPERTY);
        try {
            System.clearProperty(MiniLm.CACHE_PROPERTY);
            assertEquals(Path.of(System.getProperty("user.home"), ".cache", "peft4j"), MiniLm.defaultCacheDir());
            System.setProperty(MiniLm.CACHE_PROPERTY, "/tmp/elsewhere");
            assertEquals(Path.of("/tmp/elsewhere"), new MiniLm().cacheDir());
        } finally {
            if (old == null) {
                System.clearProperty(MiniLm.CACHE_PROPERTY);
            } else {
                System.setProperty(MiniLm.CACHE_PROPERTY, old);
            }
        }
    }
}
