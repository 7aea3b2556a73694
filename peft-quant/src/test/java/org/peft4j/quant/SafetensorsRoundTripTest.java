package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.nd4j.shade.jackson.databind.module.SimpleModule;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.quant.internal.QuantizedTensorJson;

class SafetensorsRoundTripTest {

    private static QuantizedTensor sample(QuantSpec spec) {
        return QuantizedTensor.quantize(ErrorStatisticsTest.gaussian(300 * 77, 4), new long[] {300, 77}, spec);
    }

    @Test
    void doubleQuantizedTensorRoundTripsThroughSafetensorsBytesWithBitsandbytesKeys() {
        QuantizedTensor q = sample(QuantSpec.nf4());
        Map<String, SafeTensor> t = q.toTensors("model.layers.0.mlp.down_proj");
        String w = "model.layers.0.mlp.down_proj.weight";
        assertEquals(List.of(w, w + ".absmax", w + ".quant_map", w + ".nested_absmax", w + ".nested_quant_map",
                w + ".quant_state.bitsandbytes__nf4"), List.copyOf(t.keySet()));
        assertEquals(DType.U8, t.get(w).dtype());
        assertArrayEquals(new long[] {300 * 77 / 2, 1}, t.get(w).shape());
        assertEquals(DType.U8, t.get(w + ".absmax").dtype());
        String json = new String(t.get(w + ".quant_state.bitsandbytes__nf4").rawBytes(), StandardCharsets.UTF_8);
        assertTrue(json.startsWith("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [300, 77], "
                + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": "), json);

        byte[] file = Safetensors.toBytes(t, Map.of());
        QuantizedTensor back = QuantizedTensor.fromTensors("model.layers.0.mlp.down_proj",
                Safetensors.fromBytes(file).tensors());
        assertEquals(q, back);
        assertArrayEquals(q.dequantize(), back.dequantize(), 0f);
    }

    @Test
    void plainFp4TensorRoundTrips() {
        QuantizedTensor q = sample(new QuantSpec(QuantType.FP4, 128, false));
        Map<String, SafeTensor> t = q.toTensors("p");
        assertEquals(DType.F32, t.get("p.weight.absmax").dtype());
        assertTrue(t.containsKey("p.weight.quant_state.bitsandbytes__fp4"));
        QuantizedTensor back = QuantizedTensor.fromTensors("p", Safetensors.fromBytes(Safetensors.toBytes(t, Map.of())).tensors());
        assertEquals(q, back);
    }

    @Test
    void missingEntryIsAnAdapterFormatExceptionNamingIt() {
        Map<String, SafeTensor> t = new HashMap<>(sample(QuantSpec.nf4()).toTensors("p"));
        t.remove("p.weight.nested_absmax");
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> QuantizedTensor.fromTensors("p", t));
        assertTrue(e.getMessage().contains("p.weight.nested_absmax"), e.getMessage());
    }

    @Test
    void packedLengthDisagreeingWithTheShapeIsAnAdapterFormatException() {
        Map<String, SafeTensor> t = new HashMap<>(sample(new QuantSpec(QuantType.NF4, 64, false)).toTensors("p"));
        t.put("p.weight", SafeTensor.ofBytes(DType.U8, new long[] {10, 1}, new byte[10]));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> QuantizedTensor.fromTensors("p", t));
        assertTrue(e.getMessage().contains("10 bytes") && e.getMessage().contains("needs 11550"), e.getMessage());
    }

    @Test
    void foreignCodeTableIsRejected() {
        Map<String, SafeTensor> t = new HashMap<>(sample(new QuantSpec(QuantType.NF4, 64, false)).toTensors("p"));
        t.put("p.weight.quant_map", SafeTensor.ofFloats(new long[] {16}, QuantType.FP4.table()));
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> QuantizedTensor.fromTensors("p", t));
        assertTrue(e.getMessage().contains("quant_map"), e.getMessage());
    }

    /** A corrupted scale would give non-finite weights or flip a block's sign: refused, naming the entry. */
    @Test
    void nonFiniteOrNegativeScalesInAFileAreRefused() {
        Map<String, SafeTensor> plain = sample(new QuantSpec(QuantType.NF4, 64, false)).toTensors("p");
        Object[][] plainCases = {{3, Float.NaN, "absmax[3] is NaN"}, {7, Float.POSITIVE_INFINITY, "absmax[7] is Infinity"},
            {5, -2f, "absmax[5] is -2.0"}};
        for (Object[] c : plainCases) {
            float[] absmax = plain.get("p.weight.absmax").toFloats();
            absmax[(int) c[0]] = (float) c[1];
            Map<String, SafeTensor> t = new HashMap<>(plain);
            t.put("p.weight.absmax", SafeTensor.ofFloats(new long[] {absmax.length}, absmax));
            AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> QuantizedTensor.fromTensors("p", t));
            assertEquals("4-bit tensor p.weight is inconsistent: " + c[2] + "; block scales must be finite and >= 0",
                    e.getMessage());
        }
        Map<String, SafeTensor> nested = sample(QuantSpec.nf4()).toTensors("p");
        float[] nestedAbsmax = nested.get("p.weight.nested_absmax").toFloats();
        nestedAbsmax[0] = Float.NaN;
        Map<String, SafeTensor> t1 = new HashMap<>(nested);
        t1.put("p.weight.nested_absmax", SafeTensor.ofFloats(new long[] {nestedAbsmax.length}, nestedAbsmax));
        assertEquals("4-bit tensor p.weight is inconsistent: nested absmax[0] is NaN; block scales must be finite and >= 0",
                assertThrows(AdapterFormatException.class, () -> QuantizedTensor.fromTensors("p", t1)).getMessage());
        float[] map = nested.get("p.weight.nested_quant_map").toFloats();
        map[5] = Float.NEGATIVE_INFINITY;
        Map<String, SafeTensor> t2 = new HashMap<>(nested);
        t2.put("p.weight.nested_quant_map", SafeTensor.ofFloats(new long[] {256}, map));
        assertEquals("4-bit tensor p.weight is inconsistent: nested quant map[5] is -Infinity; expected a finite value",
                assertThrows(AdapterFormatException.class, () -> QuantizedTensor.fromTensors("p", t2)).getMessage());
    }

    /**
     * A stored {@code nested_quant_map} other than ours decodes the scales (as in bitsandbytes), takes
     * part in equality, and survives the layer-configuration JSON.
     */
    @Test
    void aForeignNestedQuantMapIsKeptThroughEqualityAndJson() throws Exception {
        QuantizedTensor ours = sample(QuantSpec.nf4());
        Map<String, SafeTensor> t = new HashMap<>(ours.toTensors("p"));
        float[] half = t.get("p.weight.nested_quant_map").toFloats();
        for (int i = 0; i < half.length; i++) {
            half[i] *= 0.5f;
        }
        t.put("p.weight.nested_quant_map", SafeTensor.ofFloats(new long[] {256}, half));
        QuantizedTensor foreign = QuantizedTensor.fromTensors("p", t);
        assertArrayEquals(half, foreign.nestedQuantMap(), 0f);
        assertNotEquals(ours, foreign);
        float[] a = ours.absmax();
        float[] b = foreign.absmax();
        boolean differs = false;
        for (int i = 0; i < a.length; i++) {
            differs |= a[i] != b[i];
        }
        assertTrue(differs, "the map decodes the scales");

        ObjectMapper json = new ObjectMapper().registerModule(new SimpleModule()
                .addSerializer(QuantizedTensor.class, new QuantizedTensorJson.Serializer())
                .addDeserializer(QuantizedTensor.class, new QuantizedTensorJson.Deserializer()));
        for (QuantizedTensor q : new QuantizedTensor[] {ours, foreign}) {
            String text = json.writeValueAsString(q);
            assertEquals(q != ours, text.contains("nestedQuantMap"), "the map is written only when it is not ours");
            QuantizedTensor back = json.readValue(text, QuantizedTensor.class);
            assertEquals(q, back);
            assertArrayEquals(q.dequantize(), back.dequantize(), 0f);
        }
    }
}
