package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.CnnLossLayer;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.NoOp;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;

/**
 * What LoRA on convolutions and PEFT's initialisations cannot honour is refused with a message
 * that names the option and says what to do, before anything is built: a dilated convolution, and
 * adapters whose {@code init_lora_weights} rewrote the base weights in PEFT (PiSSA, OLoRA, CorDA,
 * LoftQ, LoRA-GA). The initialisations that only chose starting values load as plain LoRA.
 */
class LoraFamilyValidationTest {

    /** {@code in [n, 3, 7, 7] → conv (3×3, padding 1, dilation 2, 4 channels) → loss}: the fixture's shapes. */
    private static ComputationGraph dilated() {
        ComputationGraph g = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(1).dataType(DataType.DOUBLE)
                .updater(new NoOp()).graphBuilder().addInputs("in")
                .addLayer("conv", new ConvolutionLayer.Builder().kernelSize(3, 3).padding(1, 1).dilation(2, 2).nIn(3)
                        .nOut(4).activation(Activation.IDENTITY).build(), "in")
                .addLayer("out", new CnnLossLayer.Builder(LossFunctions.LossFunction.MSE).activation(Activation.IDENTITY)
                        .build(), "conv")
                .setOutputs("out").build());
        g.init();
        return g;
    }

    private static String message(Throwable e, String... phrases) {
        for (String p : phrases) {
            assertTrue(e.getMessage().contains(p), "message should contain \"" + p + "\": " + e.getMessage());
        }
        return e.getMessage();
    }

    @Test
    void aDilatedConvolutionIsRefusedWhenWrappingAndWhenLoading(@TempDir Path tmp) throws Exception {
        ComputationGraph base = dilated();
        INDArray params = base.params().dup();
        String json = base.getConfiguration().toJson();
        message(assertThrows(IllegalArgumentException.class, () -> Peft.wrap(base, LoraConfig.builder().useDora(true)
                .targetModules("conv").build())), "layer \"conv\" (ConvolutionLayer) has dilation [2, 2]",
                "needs dilation 1", "excludeModules");
        message(assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base,
                FamilyCase.of("lora/conv2d").adapterDir(tmp))), "dilation [2, 2]");
        assertEquals(params, base.params());
        assertEquals(json, base.getConfiguration().toJson());
    }

    /** The fixture {@code lora/conv2d} with {@code init_lora_weights} set to {@code value} (a JSON literal). */
    private static Path withInit(Path tmp, String value) throws Exception {
        Path dir = FamilyCase.of("lora/conv2d").adapterDir(tmp);
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config);
        String edited = json.replace("\"init_lora_weights\": true", "\"init_lora_weights\": " + value);
        assertTrue(!edited.equals(json) || "true".equals(value), "the fixture holds init_lora_weights: true");
        Files.writeString(config, edited);
        return dir;
    }

    @ParameterizedTest
    @ValueSource(strings = {"pissa", "pissa_niter_4", "PiSSA", "olora", "corda", "lora_ga"})
    void initsThatRewroteTheBaseAreRefusedOnLoadWithTheConversion(String init, @TempDir Path tmp) throws Exception {
        FamilyCase c = FamilyCase.of("lora/conv2d");
        ComputationGraph base = c.base();
        INDArray params = base.params().dup();
        Path dir = withInit(tmp, "\"" + init + "\"");
        message(assertThrows(AdapterFormatException.class, () -> Peft.load(base, dir)),
                "init_lora_weights \"" + init + "\" is not supported", "subtracted s·B·A from W",
                "path_initial_model_for_weight_conversion", "init_lora_weights: true");
        assertEquals(params, base.params());
    }

    @Test
    void loftqIsRefusedOnLoadSayingItsBaseIsTheQuantizedOne(@TempDir Path tmp) throws Exception {
        ComputationGraph base = FamilyCase.of("lora/conv2d").base();
        message(assertThrows(AdapterFormatException.class, () -> Peft.load(base, withInit(tmp, "\"loftq\""))),
                "init_lora_weights \"loftq\" is not supported", "quantized values", "merge_and_unload()");
    }

    @ParameterizedTest
    @ValueSource(strings = {"true", "false", "null", "\"gaussian\"", "\"eva\"", "\"orthogonal\"", "\"mica\""})
    void initsThatOnlyChoseStartingValuesLoadAsPlainLora(String init, @TempDir Path tmp) throws Exception {
        FamilyCase c = FamilyCase.of("lora/conv2d");
        PeftModel peft = Peft.load(c.base(), withInit(tmp, init));
        INDArray expected = c.ref("output");
        double diff = expected.sub(peft.graph().outputSingle(c.input())).amaxNumber().doubleValue();
        assertTrue(diff < 1e-12, init + ": output differs by " + diff);
        assertEquals(init.equals("\"gaussian\"") ? LoraInit.GAUSSIAN : LoraInit.KAIMING_UNIFORM,
                ((LoraConfig) peft.config()).initLoraWeights());
    }

    @Test
    void unknownInitValuesAreRefusedNamingWhatPeftAccepts() {
        message(assertThrows(AdapterFormatException.class, () -> LoraConfigFactory.init("xavier")),
                "\"xavier\" is not a value Hugging Face PEFT knows", "\"gaussian\"");
        message(assertThrows(AdapterFormatException.class, () -> LoraConfigFactory.init(3)),
                "\"init_lora_weights\" must be a boolean or a string; got");
    }

    @Test
    void doraConfigsReadBackFromTheirAdapterConfig() {
        LoraConfig dora = LoraConfig.builder().rank(4).alpha(8).useDora(true).initLoraWeights(LoraInit.GAUSSIAN)
                .targetModules("conv", "embed").build();
        Map<String, Object> json = dora.toAdapterConfig();
        assertEquals(Boolean.TRUE, json.get("use_dora"));
        assertEquals("gaussian", json.get("init_lora_weights"));
        assertEquals(dora, new LoraConfigFactory().fromAdapterConfig(json));
    }
}
