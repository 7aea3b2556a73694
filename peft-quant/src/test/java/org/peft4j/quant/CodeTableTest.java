package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.peft4j.quant.internal.CodeTables;

class CodeTableTest {

    @Test
    void nf4TableEqualsPublishedValues() {
        // QLoRA (arXiv 2305.14314) appendix / bitsandbytes get_4bit_type("nf4"), typed by hand.
        float[] published = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
            0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
        assertArrayEquals(published, QuantType.NF4.table(), 0f);
    }

    @Test
    void fp4TableEqualsBitsandbytesValues() {
        // bitsandbytes: [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12.
        float[] expected = {
            0f, 0.0625f / 12f, 8f / 12f, 1f, 4f / 12f, 0.5f, 2f / 12f, 0.25f,
            0f, -0.0625f / 12f, -8f / 12f, -1f, -4f / 12f, -0.5f, -2f / 12f, -0.25f};
        float[] table = QuantType.FP4.table();
        assertArrayEquals(expected, table, 0f);
        // The same as literals, as bitsandbytes' CPU kernels spell them.
        assertEquals(5.208333333e-03f, table[1], 1e-9f);
        assertEquals(0.66666667f, table[2], 1e-7f);
        assertEquals(0.33333333f, table[4], 1e-7f);
        assertEquals(0.16666667f, table[6], 1e-7f);
    }

    @Test
    void dynamicMapMatchesPublishedEntries() {
        float[] d = CodeTables.dynamic8();
        assertEquals(256, d.length);
        for (int i = 1; i < d.length; i++) {
            assertTrue(d[i - 1] < d[i], "map must be strictly ascending at " + i);
        }
        // Float32 values of create_dynamic_map(signed=True), as in a published baked copy of the
        // torch-built map; these entries agree exactly.
        assertEquals(-0.992968738079071f, d[0], 0f);
        assertEquals(0.0f, d[127], 0f);
        assertEquals(7.749999895168003e-06f, d[130], 0f);
        assertEquals(4.374999844003469e-05f, d[132], 0f);
        assertEquals(0.001843750011175871f, d[144], 0f);
        assertEquals(0.09859374910593033f, d[190], 0f);
        assertEquals(0.10703125596046448f, d[191], 0f);
        assertEquals(0.12109375f, d[192], 0f);
        assertEquals(0.992968738079071f, d[254], 0f);
        assertEquals(1.0f, d[255], 0f);
        // Smallest magnitude 0.55e-6: the baked copy has 5.4999998e-7 (float64 recipe), our float32
        // recipe gives the neighbouring float; one ulp apart.
        assertEquals(5.5e-7f, d[128], Math.ulp(5.5e-7f));
        assertEquals(-d[128], d[126], 0f);
    }
}
