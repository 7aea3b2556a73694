package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;

/**
 * Guards the LoRA-family reference fixtures under {@code src/test/resources/family/}, written by
 * {@code src/test/python/family_reference.py} from Hugging Face PEFT's formulas: every file reads
 * with our own safetensors reader, every tensor has the name, dtype and shape its {@code case.json}
 * records, and the adapter tensors follow PEFT's layout rules for the method and layer kind (names
 * {@code base_model.model.<module>.<suffix>}, shapes derived from rank, features and kernel). A
 * fixture edited by hand, truncated, or regenerated with a layout change fails here before any
 * implementation compares itself against it.
 */
class FamilyFixturesTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ROOT = "/family/";

    /** PEFT's {@code adapter_layer_names} per method, as they appear after the module name. */
    private static final Map<String, Set<String>> SUFFIXES = Map.of(
            "loha", Set.of("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"),
            "lokr", Set.of("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"),
            "adalora", Set.of("lora_A", "lora_B", "lora_E"),
            "dora", Set.of("lora_A.weight", "lora_B.weight", "lora_embedding_A", "lora_embedding_B",
                    "lora_magnitude_vector"),
            "lora", Set.of("lora_A.weight", "lora_B.weight", "lora_embedding_A", "lora_embedding_B"));

    private static byte[] resource(String path) throws IOException {
        try (InputStream in = FamilyFixturesTest.class.getResourceAsStream(ROOT + path)) {
            assertNotNull(in, "fixture " + ROOT + path + " is missing; run family_reference.py");
            return in.readAllBytes();
        }
    }

    private static JsonNode json(String path) throws IOException {
        return JSON.readTree(resource(path));
    }

    private static SafetensorsFile tensors(String path) throws IOException {
        return Safetensors.fromBytes(resource(path));
    }

    static Stream<String> cases() throws IOException {
        List<String> out = new ArrayList<>();
        json("index.json").get("cases").forEach(n -> out.add(n.asText()));
        return out.stream();
    }

    static Stream<String> adapterCases() throws IOException {
        return cases().filter(c -> !c.equals("adalora/allocator"));
    }

    private static long[] longs(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asLong();
        }
        return out;
    }

    private static long product(long[] a) {
        long p = 1;
        for (long v : a) {
            p *= v;
        }
        return p;
    }

    @Test
    void indexListsEveryMethodOfTheFamily() throws IOException {
        Set<String> methods = new TreeSet<>();
        cases().forEach(c -> methods.add(c.substring(0, c.indexOf('/'))));
        assertEquals(Set.of("adalora", "dora", "loha", "lokr", "lora"), methods);
        assertEquals(19, cases().count());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void referenceTensorsHaveTheRecordedNamesDtypesAndShapes(String c) throws IOException {
        JsonNode info = json(c + "/case.json");
        SafetensorsFile file = tensors(c + "/reference.safetensors");
        JsonNode expected = info.get("reference_tensors");
        assertEquals(expected.size(), file.tensors().size(), "tensor count of " + c);
        for (Iterator<Map.Entry<String, JsonNode>> it = expected.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            SafeTensor t = file.get(e.getKey());
            assertEquals(DType.valueOf(e.getValue().get("dtype").asText()), t.dtype(), c + " " + e.getKey());
            assertArrayEquals(longs(e.getValue().get("shape")), t.shape(), c + " " + e.getKey());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("adapterCases")
    void adapterTensorsAreNamedAndShapedAsPeftWritesThem(String c) throws IOException {
        JsonNode info = json(c + "/case.json");
        String method = info.get("method").asText();
        String prefix = "base_model.model." + info.get("module").asText() + ".";
        SafetensorsFile file = tensors(c + "/adapter_model.safetensors");
        JsonNode recorded = info.get("adapter_tensors");
        assertEquals(recorded.size(), file.tensors().size(), "tensor count of " + c);
        Map<String, long[]> bySuffix = new LinkedHashMap<>();
        for (Map.Entry<String, SafeTensor> e : file.tensors().entrySet()) {
            String name = e.getKey();
            assertTrue(name.startsWith(prefix), name + " does not start with " + prefix);
            String suffix = name.substring(prefix.length());
            assertTrue(SUFFIXES.get(method).contains(suffix), suffix + " is not a " + method + " tensor");
            assertEquals(DType.F32, e.getValue().dtype(), name);
            assertNotNull(recorded.get(name), name + " not recorded in case.json");
            assertArrayEquals(longs(recorded.get(name)), e.getValue().shape(), name);
            bySuffix.put(suffix, e.getValue().shape());
        }
        assertEquals(expectedLayout(info), bySuffixAsLists(bySuffix), "PEFT layout of " + c);
    }

    private static Map<String, List<Long>> bySuffixAsLists(Map<String, long[]> m) {
        Map<String, List<Long>> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(k, Arrays.stream(v).boxed().toList()));
        return out;
    }

    /**
     * PEFT's tensor shapes for one layer, derived from the case's scalars with the rules of
     * {@code lora/layer.py}, {@code loha/layer.py}, {@code lokr/layer.py},
     * {@code adalora/layer.py} and {@code lora/dora.py} (see docs/lora-family.md).
     */
    private static Map<String, List<Long>> expectedLayout(JsonNode info) {
        String method = info.get("method").asText();
        String layer = info.get("layer").asText();
        boolean conv = layer.startsWith("conv");
        long[] kernel = conv ? longs(info.get("kernel")) : new long[0];
        long in = conv ? info.get("in_channels").asLong()
                : layer.equals("embedding") ? info.get("num_embeddings").asLong() : info.get("in_features").asLong();
        long out = conv ? info.get("out_channels").asLong()
                : layer.equals("embedding") ? info.get("embedding_dim").asLong() : info.get("out_features").asLong();
        long k = product(kernel);
        Map<String, List<Long>> m = new TreeMap<>();
        switch (method) {
            case "lora", "dora" -> {
                long r = info.get("r").asLong();
                if (layer.equals("embedding")) {
                    m.put("lora_embedding_A", List.of(r, in));
                    m.put("lora_embedding_B", List.of(out, r));
                } else {
                    m.put("lora_A.weight", withKernel(List.of(r, in), kernel, false));
                    m.put("lora_B.weight", withKernel(List.of(out, r), kernel, true));
                }
                if (method.equals("dora")) {
                    m.put("lora_magnitude_vector", conv ? withKernel(List.of(1L, out), kernel, true) : List.of(out));
                }
            }
            case "loha" -> {
                long r = info.get("r").asLong();
                if (conv && info.get("use_effective_conv2d").asBoolean()) {
                    for (String i : List.of("1", "2")) {
                        m.put("hada_t" + i, withKernel(List.of(r, r), kernel, false));
                        m.put("hada_w" + i + "_a", List.of(r, out));
                        m.put("hada_w" + i + "_b", List.of(r, in));
                    }
                } else {
                    for (String i : List.of("1", "2")) {
                        m.put("hada_w" + i + "_a", List.of(out, r));
                        m.put("hada_w" + i + "_b", List.of(r, in * k));
                    }
                }
            }
            case "lokr" -> {
                long r = info.get("r").asLong();
                long[] inF = longs(info.get("in_factors"));
                long[] outF = longs(info.get("out_factors"));
                assertEquals(in, inF[0] * inF[1], "in factors");
                assertEquals(out, outF[0] * outF[1], "out factors");
                if (info.get("use_w1").asBoolean()) {
                    m.put("lokr_w1", List.of(outF[0], inF[0]));
                } else {
                    m.put("lokr_w1_a", List.of(outF[0], r));
                    m.put("lokr_w1_b", List.of(r, inF[0]));
                }
                if (info.get("use_w2").asBoolean()) {
                    m.put("lokr_w2", withKernel(List.of(outF[1], inF[1]), kernel, false));
                } else {
                    m.put("lokr_w2_a", List.of(outF[1], r));
                    m.put("lokr_w2_b", List.of(r, inF[1] * k));
                }
            }
            case "adalora" -> {
                long r = info.get("rank").asLong();
                m.put("lora_A", List.of(r, in * k));
                m.put("lora_E", List.of(r, 1L));
                m.put("lora_B", List.of(out, r));
            }
            default -> throw new AssertionError("unknown method " + method);
        }
        return m;
    }

    /** Appends the kernel dimensions, or as many 1s when {@code ones}. */
    private static List<Long> withKernel(List<Long> head, long[] kernel, boolean ones) {
        List<Long> out = new ArrayList<>(head);
        for (long d : kernel) {
            out.add(ones ? 1L : d);
        }
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("adapterCases")
    void configHasThePeftTypeRankAndScalingOfTheCase(String c) throws IOException {
        JsonNode info = json(c + "/case.json");
        JsonNode cfg = json(c + "/adapter_config.json");
        assertEquals(info.get("peft_type").asText(), cfg.get("peft_type").asText());
        switch (info.get("method").asText()) {
            case "loha", "lokr" -> {
                assertEquals(info.get("r").asInt(), cfg.get("r").asInt());
                assertEquals(info.get("scaling").asDouble(), cfg.get("alpha").asDouble() / cfg.get("r").asInt(), 0);
                assertTrue(cfg.get("init_weights").asBoolean());
            }
            case "adalora" -> {
                int initR = cfg.get("init_r").asInt();
                assertEquals(info.get("init_r").asInt(), initR);
                double alpha = cfg.get("lora_alpha").asDouble();
                assertEquals(alpha / (initR + 1e-5), info.get("effective_factor").asDouble(), 1e-15);
                JsonNode pattern = cfg.get("rank_pattern");
                if (!pattern.isNull()) {
                    JsonNode keep = pattern.get(info.get("module").asText() + ".lora_E");
                    assertEquals(initR, keep.size());
                    int kept = 0;
                    for (JsonNode b : keep) {
                        kept += b.asBoolean() ? 1 : 0;
                    }
                    assertEquals(info.get("rank").asInt(), kept);
                }
            }
            default -> {
                assertEquals(info.get("r").asInt(), cfg.get("r").asInt());
                assertEquals(info.get("scaling").asDouble(), cfg.get("lora_alpha").asDouble() / cfg.get("r").asInt(), 0);
                assertEquals(info.get("method").asText().equals("dora"), cfg.get("use_dora").asBoolean());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("adapterCases")
    void deltaAndMergedWeightHaveTheBaseWeightShapeAndAdditiveMergesAddUp(String c) throws IOException {
        JsonNode info = json(c + "/case.json");
        SafetensorsFile ref = tensors(c + "/reference.safetensors");
        INDArray w = ref.get("base_weight").toINDArray(DataType.DOUBLE);
        INDArray delta = ref.get("delta_weight").toINDArray(DataType.DOUBLE);
        INDArray merged = ref.get("merged_weight").toINDArray(DataType.DOUBLE);
        assertArrayEquals(w.shape(), delta.shape());
        assertArrayEquals(w.shape(), merged.shape());
        if (info.get("additive").asBoolean()) {
            double err = w.add(delta).subi(merged).amaxNumber().doubleValue();
            assertTrue(err <= 1e-12 * Math.max(1, merged.amaxNumber().doubleValue()), c + ": |W + dW - merged| = " + err);
        }
    }

    @Test
    void lokrFactorizationTableMultipliesBackToTheDimension() throws IOException {
        JsonNode rows = json("lokr/factorization.json").get("rows");
        assertTrue(rows.size() >= 30);
        for (JsonNode row : rows) {
            long dim = row.get("dimension").asLong();
            long m = row.get("m").asLong();
            long n = row.get("n").asLong();
            assertEquals(dim, m * n, row.toString());
            int factor = row.get("factor").asInt();
            boolean factorDivides = factor > 0 && dim % factor == 0;
            assertTrue(factorDivides ? m == factor : m <= n, row.toString());
        }
    }

    @Test
    void adaloraBudgetSchedulesStartAtInitAndEndAtTargetWithoutRising() throws IOException {
        for (JsonNode s : json("adalora/budget_schedule.json").get("schedules")) {
            long init = s.get("init_bgt").asLong();
            long target = s.get("target_bgt").asLong();
            assertEquals(s.get("init_r").asLong() * s.get("layers").asLong(), init);
            assertEquals(s.get("target_r").asLong() * s.get("layers").asLong(), target);
            long previous = Long.MAX_VALUE;
            JsonNode rows = s.get("rows");
            for (JsonNode row : rows) {
                long budget = row.get("schedule_budget").asLong();
                assertTrue(budget <= previous && budget >= target && budget <= init, s.get("name") + " " + row);
                if (row.get("step").asLong() <= s.get("tinit").asLong()) {
                    assertEquals(init, budget, row.toString());
                }
                previous = budget;
            }
            assertEquals(target, rows.get(rows.size() - 1).get("schedule_budget").asLong());
        }
    }

    @Test
    void adaloraAllocatorKeepsExactlyTheBudget() throws IOException {
        JsonNode info = json("adalora/allocator/case.json");
        int kept = 0;
        int total = 0;
        for (JsonNode keep : info.get("rank_pattern")) {
            for (JsonNode b : keep) {
                kept += b.asBoolean() ? 1 : 0;
                total++;
            }
        }
        assertEquals(info.get("init_bgt").asInt(), total);
        assertEquals(info.get("budget").asInt(), kept);
        assertEquals(info.get("init_bgt").asInt() - info.get("budget").asInt(), info.get("kthvalue_k").asInt());
    }
}
