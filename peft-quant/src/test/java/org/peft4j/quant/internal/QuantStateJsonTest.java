package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.quant.QuantType;

class QuantStateJsonTest {

    @Test
    void encodesLikePythonJsonDumpsOfTheQuantState() {
        byte[] json = QuantStateJson.encode(QuantType.NF4, 64, new long[] {4096, 11008}, true, 256, 0.25f);
        assertEquals("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [4096, 11008], "
                + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.25}",
                new String(json, StandardCharsets.UTF_8));
        assertEquals("{\"quant_type\": \"fp4\", \"blocksize\": 128, \"dtype\": \"float32\", \"shape\": [7]}",
                new String(QuantStateJson.encode(QuantType.FP4, 128, new long[] {7}, false, 0, 0f), StandardCharsets.UTF_8));
    }

    @Test
    void offsetUsesPythonFloatRepr() {
        // Expected strings: Python's repr(float(numpy.float32(v))).
        assertEquals("0.10000000149011612", QuantStateJson.pythonRepr(0.1f));
        assertEquals("1.0", QuantStateJson.pythonRepr(1f));
        assertEquals("9.999999747378752e-05", QuantStateJson.pythonRepr(0.0001f));
        assertEquals("9.999999747378752e-06", QuantStateJson.pythonRepr(1e-5f));
        assertEquals("123456.703125", QuantStateJson.pythonRepr(123456.7f));
        assertEquals("3.000000060122632e+20", QuantStateJson.pythonRepr(3e20f));
        assertEquals("0.0002500000118743628", QuantStateJson.pythonRepr(0.00025f));
    }

    @Test
    void decodesWhatItEncodes() {
        byte[] json = QuantStateJson.encode(QuantType.NF4, 64, new long[] {3, 5}, true, 256, 0.0123f);
        QuantStateJson.State s = QuantStateJson.decode(json, "p.weight.quant_state.bitsandbytes__nf4");
        assertEquals(QuantType.NF4, s.type());
        assertEquals(64, s.blockSize());
        assertArrayEquals(new long[] {3, 5}, s.shape());
        assertTrue(s.nested());
        assertEquals(256, s.nestedBlockSize());
        assertEquals(0.0123f, s.offset(), 0f);
    }

    @Test
    void malformedStateIsAnAdapterFormatException() {
        AdapterFormatException e = assertThrows(AdapterFormatException.class, () -> QuantStateJson.decode(
                "{\"quant_type\": \"nf5\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [2]}"
                        .getBytes(StandardCharsets.UTF_8), "w.quant_state"));
        assertTrue(e.getMessage().contains("nf5"), e.getMessage());
        e = assertThrows(AdapterFormatException.class, () -> QuantStateJson.decode(
                "{\"quant_type\": \"nf4\", \"dtype\": \"float32\", \"shape\": [2]}".getBytes(StandardCharsets.UTF_8),
                "w.quant_state"));
        assertTrue(e.getMessage().contains("blocksize"), e.getMessage());
    }

    /** A 200,000-digit number is refused before Jackson converts it (quadratic time), naming where it is. */
    @Test
    void anOverlongNumberIsRefusedBeforeConversion() {
        String json = "{\"quant_type\": \"nf4\", \"blocksize\": " + "6".repeat(200_000)
                + ", \"dtype\": \"float32\", \"shape\": [2]}";
        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> QuantStateJson.decode(json.getBytes(StandardCharsets.UTF_8), "w.quant_state"));
        assertEquals("w.quant_state: the number at line 1, column 36 has 200000 characters; numbers here have at "
                + "most 100", e.getMessage());
    }

    /** An offset of 1e300 was read as float Infinity, a shape entry 2.5 as 2: both are refused, naming the key. */
    @Test
    void numbersAFloatOrAShapeCannotCarryAreRefused() {
        AdapterFormatException offset = assertThrows(AdapterFormatException.class, () -> QuantStateJson.decode(
                ("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [2], "
                        + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 1e300}")
                        .getBytes(StandardCharsets.UTF_8), "w.quant_state"));
        assertEquals("w.quant_state: \"nested_offset\" is 1.0E300; expected a number a float can hold (the offset is "
                + "added to float block scales)", offset.getMessage());
        for (String entry : new String[] {"2.5", "-3", "1e3"}) {
            AdapterFormatException shape = assertThrows(AdapterFormatException.class, () -> QuantStateJson.decode(
                    ("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [4, " + entry
                            + "]}").getBytes(StandardCharsets.UTF_8), "w.quant_state"));
            assertTrue(shape.getMessage().startsWith("w.quant_state: \"shape\" entry 1 is "), shape.getMessage());
            assertTrue(shape.getMessage().endsWith("; expected a non-negative integer"), shape.getMessage());
        }
    }

    @Test
    void fileContentEchoedInMessagesIsShortened() {
        String huge = "[" + "1,".repeat(100_000) + "1]";
        AdapterFormatException e = assertThrows(AdapterFormatException.class,
                () -> QuantStateJson.decode(huge.getBytes(StandardCharsets.UTF_8), "w.quant_state"));
        assertTrue(e.getMessage().length() < 400, e.getMessage().length() + " characters");
    }
}
