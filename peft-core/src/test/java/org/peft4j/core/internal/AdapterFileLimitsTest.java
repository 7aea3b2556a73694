package org.peft4j.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.IncompatibleAdapterException;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.testing.AdapterDirs;
import org.peft4j.core.testing.TinyGraphs;

/**
 * Weights files that claim something other than an adapter for the base model: refused from the
 * header with a message that says what is wrong, in a few lines whatever the file holds.
 */
class AdapterFileLimitsTest {

    /** 756 parameters: {@code 8 → 16 → 16 → 16 → 4}. */
    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    /** A bottleneck adapter of 2,128 parameters after dense1: more than the whole base model. */
    private static PeftModel largerThanItsBase(Path dir) throws Exception {
        PeftModel peft = Peft.wrap(base(), AdapterConfig.builder().insertAfter("dense1").bottleneckSize(64).build());
        peft.graph().params().assign(peft.graph().params().add(0.25)); // non-zero, exactly representable
        peft.saveAdapter(dir);
        return peft;
    }

    private static Map<String, SafeTensor> saved(Path dir) throws Exception {
        return new LinkedHashMap<>(Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors());
    }

    private static SafeTensor asF64(SafeTensor t) {
        float[] f = t.toFloats();
        ByteBuffer b = ByteBuffer.allocate(f.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : f) {
            b.putDouble(v);
        }
        return SafeTensor.ofBytes(DType.F64, t.shape(), b.array());
    }

    private static INDArray output(PeftModel m) {
        return m.graph().outputSingle(TinyGraphs.classification(DataType.FLOAT, 3, 4, 8, 4).getFeatures());
    }

    @Test
    void aWeightsFileWithoutTensorsIsNamedAsSuch(@TempDir Path dir) throws Exception {
        largerThanItsBase(dir);
        AdapterDirs.replaceWeights(dir, Map.of(), Map.of());
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals(dir.resolve("adapter_model.safetensors") + " holds no tensors, but the BOTTLENECK adapter its config "
                + "describes trains 2128 parameters; the file is empty or was cut, save the adapter again", e.getMessage());
    }

    /** F64 is accepted (Hugging Face PEFT loads it too) and counted like any other floating-point dtype. */
    @Test
    void anAllF64FileLoadsLikeItsF32Original(@TempDir Path dir) throws Exception {
        PeftModel peft = largerThanItsBase(dir);
        Map<String, SafeTensor> tensors = saved(dir);
        tensors.replaceAll((k, t) -> asF64(t));
        AdapterDirs.replaceWeights(dir, tensors, Map.of());
        assertEquals(output(peft), output(Peft.load(base(), dir)));
    }

    @Test
    void anF64ValueBeyondTheFloatRangeIsRefusedNamingTensorAndDtype(@TempDir Path dir) throws Exception {
        largerThanItsBase(dir);
        Map<String, SafeTensor> tensors = saved(dir);
        String name = tensors.keySet().iterator().next();
        SafeTensor t = tensors.get(name);
        ByteBuffer b = ByteBuffer.wrap(asF64(t).rawBytes()).order(ByteOrder.LITTLE_ENDIAN);
        b.putDouble(8 * 3, 1e300);
        tensors.put(name, SafeTensor.ofBytes(DType.F64, t.shape(), b.array()));
        AdapterDirs.replaceWeights(dir, tensors, Map.of());
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals(name + " in " + dir + " holds 1.0E300 (F64), which is Infinity as a float, at element 3; adapter "
                + "weights must be finite", e.getMessage());
    }

    @Test
    void anIntegerTensorIsRefusedFromTheHeaderNamingTensorAndDtype(@TempDir Path dir) throws Exception {
        largerThanItsBase(dir);
        Map<String, SafeTensor> tensors = saved(dir);
        String name = tensors.keySet().iterator().next();
        SafeTensor t = tensors.get(name);
        tensors.put(name, SafeTensor.ofBytes(DType.I32, t.shape(), t.rawBytes()));
        AdapterDirs.replaceWeights(dir, tensors, Map.of());
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> Peft.load(base(), dir));
        assertEquals(dir.resolve("adapter_model.safetensors") + ": 1 tensors are not floating-point: [" + name
                + " (I32)]; adapter weights must be F32, F16, BF16 or F64", e.getMessage());
    }

    /** 500,000 unknown empty tensors (a 30 MB header) once gave a message of 21,889,050 characters. */
    @Test
    void aHeaderOfHalfAMillionUnknownTensorsGetsAShortMessage(@TempDir Path dir) throws Exception {
        largerThanItsBase(dir);
        Map<String, SafeTensor> tensors = saved(dir);
        SafeTensor empty = SafeTensor.ofFloats(new long[] {0}, new float[0]);
        for (int i = 0; i < 500_000; i++) {
            tensors.put("base_model.model.unknown_layer_with_a_long_name." + i, empty);
        }
        AdapterDirs.replaceWeights(dir, tensors, Map.of());
        assertTrue(Files.size(dir.resolve("adapter_model.safetensors")) > 30_000_000);
        Exception e = assertThrows(Exception.class, () -> Peft.load(base(), dir));
        assertTrue(e instanceof AdapterFormatException || e instanceof IncompatibleAdapterException, e.toString());
        assertTrue(e.getMessage().length() < 1000, () -> e.getMessage().length() + " characters: "
                + e.getMessage().substring(0, 1000));
        assertTrue(e.getMessage().contains("header lists more than 128 tensors; an adapter for this base model "
                + "(4 layers) holds at most 128"), e.getMessage());
    }

    @Test
    void unknownTensorsWithinTheLimitAreListedBoundedly(@TempDir Path dir) throws Exception {
        largerThanItsBase(dir);
        Map<String, SafeTensor> tensors = saved(dir);
        SafeTensor empty = SafeTensor.ofFloats(new long[] {0}, new float[0]);
        for (int i = 0; i < 100; i++) {
            tensors.put(String.format("base_model.model.stray%03d", i), empty);
        }
        AdapterDirs.replaceWeights(dir, tensors, Map.of());
        IncompatibleAdapterException e = assertThrows(IncompatibleAdapterException.class, () -> Peft.load(base(), dir));
        assertTrue(e.getMessage().endsWith("does not fit the base model: adapter_model.safetensors: 100 unknown tensors "
                + "[base_model.model.stray000, "
                + "base_model.model.stray001, base_model.model.stray002, base_model.model.stray003, "
                + "base_model.model.stray004, base_model.model.stray005, base_model.model.stray006, "
                + "base_model.model.stray007, base_model.model.stray008, base_model.model.stray009, "
                + "base_model.model.stray010, base_model.model.stray011, base_model.model.stray012, "
                + "base_model.model.stray013, base_model.model.stray014, base_model.model.stray015, "
                + "base_model.model.stray016, base_model.model.stray017, base_model.model.stray018, "
                + "base_model.model.stray019, and 80 more]"), e.getMessage());
    }
}
