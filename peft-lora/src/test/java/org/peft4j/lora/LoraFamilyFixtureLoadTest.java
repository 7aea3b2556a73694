package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.testing.GradientChecks;
import org.peft4j.lora.internal.LoraTestHooks;

/**
 * The committed PEFT adapters of DoRA (dense, embedding, Conv2D, Conv1D) and of LoRA on
 * embeddings and convolutions, loaded with {@link Peft#load} onto a graph built from each case's
 * base weights, compute the independent numpy reference (PEFT's formulas, written by
 * {@code family_reference.py}): the forward output, {@code ΔW} and the merged weight (and for DoRA
 * the weight norm, the magnitude a new adapter starts from, and the detached-norm gradients). This
 * is what makes the files interchangeable with PEFT; saving the loaded adapter again writes the
 * same tensor names, shapes and values.
 */
class LoraFamilyFixtureLoadTest {
    private static final double TOL = 1e-12;
    private static DataType before;

    @BeforeAll
    static void doublePrecision() {
        before = Nd4j.dataType();
        GradientChecks.useDoublePrecision();
    }

    @AfterAll
    static void restore() {
        Nd4j.setDefaultDataTypes(before, before);
    }

    private static void assertClose(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what + ": shape");
        double scale = Math.max(1.0, expected.amaxNumber().doubleValue());
        double diff = expected.castTo(DataType.DOUBLE).sub(actual.castTo(DataType.DOUBLE)).amaxNumber().doubleValue();
        assertTrue(diff <= TOL * scale, what + " differs from the reference by " + diff + "\nexpected " + expected
                + "\nactual " + actual);
    }

    @ParameterizedTest
    @ValueSource(strings = {"dora/dense", "dora/embedding", "dora/conv2d", "dora/conv1d", "lora/embedding",
        "lora/conv2d", "lora/conv1d"})
    void peftAdapterLoadsAndComputesTheReference(String name, @TempDir Path tmp) throws Exception {
        FamilyCase c = FamilyCase.of(name);
        ComputationGraph base = c.base();
        INDArray baseKernel = c.kernelOf(base).dup();
        PeftModel peft = Peft.load(base, c.adapterDir(tmp));
        FrozenBaseLayer layer = peft.adaptedLayers().get(c.module());
        boolean dora = name.startsWith("dora/");
        assertEquals(dora, layer instanceof LoraDenseLayer ? ((LoraDenseLayer) layer).useDora()
                : layer instanceof LoraEmbeddingLayer ? ((LoraEmbeddingLayer) layer).useDora()
                : ((LoraConvolutionLayer) layer).useDora());

        INDArray expected = c.toOutputLayout(c.ref("output"));
        assertClose(expected, peft.graph().outputSingle(c.input()), name + " output");
        if (dora) {
            assertClose(c.ref("weight_norm"), LoraTestHooks.weightNorm(peft.graph(), c.module()), name + " weight norm");
        }

        ComputationGraph merged = peft.mergeAndUnload();
        assertClose(c.toKernel(c.ref("merged_weight")), c.kernelOf(merged), name + " merged weight");
        assertClose(expected, merged.outputSingle(c.input()), name + " merged output");
        if (!dora) {
            assertClose(c.toKernel(c.ref("delta_weight")), c.kernelOf(merged).sub(baseKernel), name + " ΔW");
        }

        // written again: PEFT's names and shapes, the same values
        Path again = tmp.resolve("again");
        peft.saveAdapter(again);
        SafetensorsFile original = Safetensors.read(c.adapterDir(tmp.resolve("orig")).resolve("adapter_model.safetensors"));
        SafetensorsFile written = Safetensors.read(again.resolve("adapter_model.safetensors"));
        assertEquals(new TreeMap<>(original.tensors()).keySet(), new TreeMap<>(written.tensors()).keySet());
        for (Map.Entry<String, SafeTensor> e : original.tensors().entrySet()) {
            assertArrayEquals(e.getValue().shape(), written.get(e.getKey()).shape(), e.getKey());
            assertArrayEquals(e.getValue().toFloats(), written.get(e.getKey()).toFloats(), e.getKey());
        }
        assertTrue(Files.readString(again.resolve("adapter_config.json")).contains("\"use_dora\": " + dora));
    }

    @ParameterizedTest
    @ValueSource(strings = {"dora/dense", "dora/embedding", "dora/conv2d", "dora/conv1d"})
    void aNewDoraAdapterStartsWithTheMagnitudeOfTheBaseWeight(String name) throws Exception {
        FamilyCase c = FamilyCase.of(name);
        ComputationGraph base = c.base();
        PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(c.rank()).alpha(c.alpha()).useDora(true)
                .targetModules(c.module()).build());
        assertClose(c.ref("magnitude_at_init"), peft.graph().getLayer(c.module()).getParam(LoraDenseLayer.LORA_M),
                name + " magnitude at init");
        assertClose(base.outputSingle(c.input()), peft.graph().outputSingle(c.input()), name + " output at init");
    }

    /** The reference gradients hold the norm constant (PEFT's detach); the layer's backward pass does too, unpinned. */
    @ParameterizedTest
    @ValueSource(strings = {"dora/dense", "dora/embedding"})
    void doraGradientsAreTheDetachedNormGradientsOfTheReference(String name, @TempDir Path tmp) throws Exception {
        FamilyCase c = FamilyCase.of(name);
        ComputationGraph base = c.base();
        PeftModel loaded = Peft.load(base, c.adapterDir(tmp));
        boolean dense = "dense".equals(c.module());
        // the dense target needs something trainable upstream to compute its input gradient
        LoraConfig.Builder cfg = LoraConfig.builder().rank(c.rank()).alpha(c.alpha()).useDora(true)
                .targetModules(c.module());
        PeftModel peft = Peft.wrap(base, (dense ? cfg.modulesToSave("pre") : cfg).build());
        Layer layer = peft.graph().getLayer(c.module());
        for (Map.Entry<String, INDArray> e : loaded.graph().getLayer(c.module()).paramTable().entrySet()) {
            layer.getParam(e.getKey()).assign(e.getValue());
        }
        peft.graph().initGradientsView();
        LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
        layer.setInput(c.input(), mgr);
        layer.activate(true, mgr);
        Pair<Gradient, INDArray> p = layer.backpropGradient(c.toOutputLayout(c.ref("grad_output")), mgr);
        Gradient g = p.getFirst();
        String a = dense ? "grad_lora_A" : "grad_lora_embedding_A";
        String b = dense ? "grad_lora_B" : "grad_lora_embedding_B";
        assertClose(c.ref(a).transpose(), g.getGradientFor(LoraDenseLayer.LORA_A), name + " dL/dA");
        assertClose(c.ref(b).transpose(), g.getGradientFor(LoraDenseLayer.LORA_B), name + " dL/dB");
        assertClose(c.ref("grad_magnitude"), g.getGradientFor(LoraDenseLayer.LORA_M).reshape(c.ref("grad_magnitude")
                .shape()), name + " dL/dm");
        if (dense) {
            assertInstanceOf(INDArray.class, p.getSecond(), "the target passes an input gradient");
            assertClose(c.ref("grad_x"), p.getSecond(), name + " dL/dx");
        }
    }
}
