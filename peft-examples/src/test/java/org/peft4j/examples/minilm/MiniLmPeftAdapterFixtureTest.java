package org.peft4j.examples.minilm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.peft4j.core.spi.PeftJson;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;

/**
 * Guards the MiniLM adapter that {@code src/test/python/write_minilm_peft_adapter.py} wrote in Hugging Face
 * PEFT's names without PEFT or peft4j: the tensors are exactly those PEFT names for LoRA on query and value of
 * the six layers, in PyTorch's orientation, and the update {@code (alpha / r)·B·A} computed here with plain
 * loops from the file equals the numbers numpy computed when it wrote the file. That update is the
 * independent reference for loading the adapter onto the imported MiniLM: a reader that transposed
 * {@code lora_A}, {@code lora_B} or the update would disagree with numpy's entries.
 */
class MiniLmPeftAdapterFixtureTest {

    static final String PREFIX = "base_model.model.";
    static final int LAYERS = 6;
    static final int D = 384;

    static Path fixture(String file) throws URISyntaxException {
        return Path.of(MiniLmPeftAdapterFixtureTest.class.getResource("/minilm-peft-adapter/" + file).toURI());
    }

    /**
     * {@code (alpha / r)·B·A} of one target in PyTorch's orientation {@code [out, in]}, from the file's
     * {@code lora_A [r, in]} and {@code lora_B [out, r]}, accumulated in double.
     */
    static double[][] delta(SafetensorsFile file, String module, double alpha) {
        SafeTensor a = file.get(PREFIX + module + ".lora_A.weight");
        SafeTensor b = file.get(PREFIX + module + ".lora_B.weight");
        int r = Math.toIntExact(a.shape()[0]);
        int in = Math.toIntExact(a.shape()[1]);
        int out = Math.toIntExact(b.shape()[0]);
        float[] av = a.toFloats();
        float[] bv = b.toFloats();
        double scale = alpha / r;
        double[][] d = new double[out][in];
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int k = 0; k < r; k++) {
                    s += (double) bv[o * r + k] * av[k * in + i];
                }
                d[o][i] = scale * s;
            }
        }
        return d;
    }

    @Test
    void tensorsAreThosePeftNamesForLoraOnQueryAndValue() throws Exception {
        SafetensorsFile file = Safetensors.read(fixture("adapter_model.safetensors"));
        assertEquals(Map.of("format", "pt"), file.metadata());
        TreeSet<String> expected = new TreeSet<>();
        for (int i = 0; i < LAYERS; i++) {
            for (String t : List.of("query", "value")) {
                expected.add(PREFIX + "encoder.layer." + i + ".attention.self." + t + ".lora_A.weight");
                expected.add(PREFIX + "encoder.layer." + i + ".attention.self." + t + ".lora_B.weight");
            }
        }
        assertEquals(expected, new TreeSet<>(file.tensors().keySet()));
        for (Map.Entry<String, SafeTensor> e : file.tensors().entrySet()) {
            assertEquals(DType.F32, e.getValue().dtype(), e.getKey());
            long[] shape = e.getKey().contains("lora_A") ? new long[] {4, D} : new long[] {D, 4};
            assertArrayEquals(shape, e.getValue().shape(), e.getKey());
        }
    }

    @Test
    void configIsPeftsLoraConfigForFeatureExtraction() throws Exception {
        Map<String, Object> c = PeftJson.parseObject(Files.readAllBytes(fixture("adapter_config.json")), "adapter_config.json");
        assertEquals("LORA", c.get("peft_type"));
        assertEquals(4, c.get("r"));
        assertEquals(8, c.get("lora_alpha"));
        assertEquals(List.of("query", "value"), c.get("target_modules"));
        assertEquals("FEATURE_EXTRACTION", c.get("task_type"));
        assertEquals("sentence-transformers/all-MiniLM-L6-v2", c.get("base_model_name_or_path"));
        assertEquals(Boolean.FALSE, c.get("fan_in_fan_out"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void updateComputedWithLoopsEqualsNumpysForEveryTarget() throws Exception {
        SafetensorsFile file = Safetensors.read(fixture("adapter_model.safetensors"));
        Map<String, Object> expected = PeftJson.parseObject(Files.readAllBytes(fixture("expected-delta.json")),
                "expected-delta.json");
        assertEquals(2.0, ((Number) expected.get("scale")).doubleValue());
        Map<String, Object> targets = (Map<String, Object>) expected.get("targets");
        assertEquals(2 * LAYERS, targets.size());
        for (Map.Entry<String, Object> t : targets.entrySet()) {
            Map<String, Object> want = (Map<String, Object>) t.getValue();
            double[][] d = delta(file, t.getKey(), 8);
            double frob = 0;
            double sum = 0;
            for (double[] row : d) {
                for (double v : row) {
                    frob += v * v;
                    sum += v;
                }
            }
            double wantFrob = ((Number) want.get("frobenius")).doubleValue();
            assertTrue(wantFrob > 0.1, t.getKey() + ": the fixture's B must not be zero");
            assertEquals(wantFrob, Math.sqrt(frob), 1e-9 * wantFrob, t.getKey() + " Frobenius norm");
            assertEquals(((Number) want.get("sum")).doubleValue(), sum, 1e-9 * wantFrob * D, t.getKey() + " sum");
            for (Object o : (List<Object>) want.get("entries")) {
                List<Number> e = (List<Number>) o;
                int row = e.get(0).intValue();
                int col = e.get(1).intValue();
                assertEquals(e.get(2).doubleValue(), d[row][col], 1e-12, t.getKey() + " delta[" + row + "][" + col + "]");
            }
        }
    }
}
