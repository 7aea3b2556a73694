package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;

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
}
