package org.peft4j.core.blocks;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Writes the fixtures of {@link LegacyLayoutTest} ({@code legacy-layout/}): a tiny decoder and a
 * tiny encoder as {@code ModelSerializer} zips, and their outputs on the test's tokens and mask.
 * They were written with peft4j at commit 2ff306e, the last one whose {@link Transformers} built
 * sequence layouts; run against a later peft4j it writes the rows layout, which is not what the
 * test is for ({@code java -cp <that build> org.peft4j.core.blocks.LegacyLayoutFixtureWriter DIR}).
 */
final class LegacyLayoutFixtureWriter {

    private LegacyLayoutFixtureWriter() {
    }

    /** Writes the four files into the directory {@code args[0]}. */
    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[0]);
        Files.createDirectories(out);
        ComputationGraph dec = Transformers.decoder().vocabSize(11).maxLength(8).dModel(8).heads(2).layers(2).mlpRatio(2)
                .updater(new Adam(1e-2)).seed(21).build();
        ComputationGraph enc = Transformers.encoder().vocabSize(11).maxLength(8).dModel(8).heads(2).layers(2).mlpRatio(2)
                .classes(3).updater(new Adam(1e-2)).seed(22).build();
        for (ComputationGraph g : new ComputationGraph[] {dec, enc}) {
            // gains and biases away from 1 and 0, so the norms do something
            Nd4j.getRandom().setSeed(5);
            for (org.deeplearning4j.nn.api.Layer l : g.getLayers()) {
                String n = l.conf().getLayer().getLayerName();
                if (n.endsWith(".ln1") || n.endsWith(".ln2") || n.endsWith(".ln")) {
                    l.getParam("g").assign(Nd4j.rand(DataType.FLOAT, l.getParam("g").shape()).addi(0.5));
                    l.getParam("b").assign(Nd4j.randn(DataType.FLOAT, l.getParam("b").shape()).muli(0.3));
                }
            }
        }
        INDArray tokens = Nd4j.createFromArray(new float[][] {{1, 4, 2, 7, 3, 9}, {5, 2, 8, 1, 0, 0}});
        INDArray mask = Nd4j.createFromArray(new float[][] {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}});
        ModelSerializer.writeModel(dec, new File(out.toFile(), "decoder.zip"), true);
        ModelSerializer.writeModel(enc, new File(out.toFile(), "encoder.zip"), true);
        write(out.resolve("decoder-output.txt"), dec.output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0]);
        write(out.resolve("encoder-output.txt"), enc.output(false, new INDArray[] {tokens}, new INDArray[] {mask})[0]);
    }

    /** The shape on the first line, then the values in 'c' order, one per line. */
    static void write(Path p, INDArray x) throws Exception {
        StringBuilder sb = new StringBuilder();
        sb.append(java.util.Arrays.toString(x.shape())).append('\n');
        for (float v : x.dup('c').data().asFloat()) {
            sb.append(Float.toString(v)).append('\n');
        }
        Files.writeString(p, sb.toString());
    }
}
