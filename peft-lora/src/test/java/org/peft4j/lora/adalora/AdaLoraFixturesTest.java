package org.peft4j.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.PeftFiles;

/**
 * The committed AdaLoRA adapters that {@code family_reference.py} wrote from Hugging Face PEFT's
 * formulas ({@code adalora/dense}, {@code adalora/dense_rank_pattern} as PEFT saves an adapter
 * after budgeting, {@code adalora/conv2d}), loaded with {@link Peft#load} onto a graph built from
 * each case's base weights: the output, {@code ΔW}, the merged weight and the merged graph's output
 * equal the reference's; saving the loaded adapter writes PEFT's tensors bit for bit and its config
 * keys with its values.
 */
class AdaLoraFixturesTest {
    private static final double TOL = 1e-10;
    /** PEFT's keys we leave out: defaults or bookkeeping of newer releases, which PEFT fills in. */
    private static final Set<String> NOT_WRITTEN = Set.of("alpha_pattern", "auto_mapping", "exclude_modules",
            "layers_pattern", "layers_to_transform", "loftq_config", "lora_bias", "peft_version", "revision");

    @ParameterizedTest
    @ValueSource(strings = {"adalora/dense", "adalora/dense_rank_pattern", "adalora/conv2d"})
    void peftAdapterLoadsAndComputesTheReference(String name) throws IOException {
        FamilyCase c = FamilyCase.of(name);
        PeftModel peft = Peft.load(c.base(DataType.DOUBLE), c.dir());
        INDArray x = c.x(DataType.DOUBLE);
        FamilyCase.assertClose(c.ref("output"), peft.graph().outputSingle(x), TOL, name + " output");

        Layer layer = peft.graph().getLayer(c.module());
        AdaLoraLayer a = assertInstanceOf(AdaLoraLayer.class, layer.conf().getLayer());
        assertEquals(c.info().get("rank").asInt(), a.rank(), "triplets held");
        assertEquals(c.info().get("init_r").asInt(), a.initRank(), "ranknum");
        assertEquals(c.info().get("effective_factor").asDouble(), a.scaling(), 1e-15, "lora_alpha / (ranknum + 1e-5)");
        INDArray delta = c.ref("delta_weight");
        FamilyCase.assertClose(delta.reshape('c', delta.size(0), delta.length() / delta.size(0)),
                a.deltaWeight(layer.paramTable()), TOL, name + " ΔW");

        ComputationGraph merged = peft.mergeAndUnload();
        FamilyCase.assertClose(c.stockWeight(c.ref("merged_weight")), merged.getLayer(c.module()).getParam("W"), TOL,
                name + " merged weight");
        FamilyCase.assertClose(c.ref("output"), merged.outputSingle(x), TOL, name + " merged output");
    }

    /** The float graphs users train: the same reference to float precision. */
    @Test
    void floatGraphComputesTheReference() throws IOException {
        FamilyCase c = FamilyCase.of("adalora/dense_rank_pattern");
        PeftModel peft = Peft.load(c.base(DataType.FLOAT), c.dir());
        FamilyCase.assertClose(c.ref("output"), peft.graph().outputSingle(c.x(DataType.FLOAT)), 1e-5, "float output");
    }

    @ParameterizedTest
    @ValueSource(strings = {"adalora/dense", "adalora/dense_rank_pattern", "adalora/conv2d"})
    void savedAdapterHoldsPeftsTensorsAndKeys(String name, @TempDir Path tmp) throws IOException {
        FamilyCase c = FamilyCase.of(name);
        PeftModel peft = Peft.load(c.base(DataType.FLOAT), c.dir());
        Path out = tmp.resolve("again");
        peft.saveAdapter(out);
        PeftFiles.assertSameTensors(c.adapterTensors(), out);

        Map<String, Object> written = FamilyCase.readConfig(out);
        Map<String, Object> peftWrote = c.adapterConfig();
        Set<String> ours = PeftFiles.assertPeftKeysOnly(written,
                PeftFiles.fieldList("/peft-0.13-adalora-config-fields.txt"));
        Set<String> missing = new TreeSet<>(peftWrote.keySet());
        missing.removeAll(ours);
        assertEquals(NOT_WRITTEN, missing, "PEFT's keys not written");
        for (String k : ours) {
            assertEquals(peftWrote.get(k), written.get(k), "value of " + k);
        }
    }
}
