package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.testing.GradientChecks;

/**
 * The grouping, shift and masks of S²-Attn against the independent numpy reference
 * {@code src/test/python/s2_attention_reference.py}, which computes every query position by
 * position with plain loops; and the grouping as an exact permutation.
 */
class ShiftedSparseAttentionTest {

    private static SafetensorsFile fixture;

    @BeforeAll
    static void load() throws IOException {
        GradientChecks.useDoublePrecision();
        try (InputStream in = ShiftedSparseAttentionTest.class.getResourceAsStream(
                "/org/peft4j/core/blocks/s2_attention_reference.safetensors")) {
            fixture = Safetensors.fromBytes(in.readAllBytes());
        }
    }

    private static INDArray t(String name) {
        return fixture.get(name).toINDArray(DataType.DOUBLE);
    }

    @Test
    void outputsMatchTheNumpyReferenceForEveryCase() {
        for (String c : List.of("causal_two_groups", "bidirectional_masked", "causal_padded_length_masked",
                "causal_two_heads_three_groups", "causal_one_group")) {
            INDArray meta = t(c + ".meta");
            int g = (int) meta.getDouble(0);
            boolean causal = meta.getDouble(1) == 1.0;
            INDArray mask = meta.getDouble(2) == 1.0 ? t(c + ".mask") : null;
            ShiftedSparseAttention.Forward f = ShiftedSparseAttention.forward(t(c + ".q"), t(c + ".k"), t(c + ".v"),
                    meta.getDouble(3), causal, mask, g);
            INDArray expected = t(c + ".out");
            assertEquals(0.0, f.out().sub(expected).amaxNumber().doubleValue(), 1e-12, c);
        }
    }

    @Test
    void groupedPathWithOneGroupIsFullCausalAttention() {
        String c = "causal_one_group";
        INDArray q = t(c + ".q");
        INDArray k = t(c + ".k");
        INDArray v = t(c + ".v");
        double scale = t(c + ".meta").getDouble(3);
        ShiftedSparseAttention.Forward s2 = ShiftedSparseAttention.forward(q, k, v, scale, true, null, (int) q.size(2));
        AttentionKernel.Forward full = AttentionKernel.forward(q, k, v, scale,
                AttentionKernel.allowedKeys(q.size(0), q.size(2), q.size(2), true, null, DataType.DOUBLE));
        assertEquals(0.0, s2.out().sub(full.out()).amaxNumber().doubleValue(), 1e-13);
        assertEquals(0.0, t(c + ".full").sub(full.out()).amaxNumber().doubleValue(), 1e-12,
                "the numpy full attention agrees with the kernel");
    }

    @Test
    void groupingIsAPermutationThatUngroupUndoes() {
        INDArray x = Nd4j.rand(DataType.DOUBLE, 2, 4, 10, 3);
        ShiftedSparseAttention.Plan p = ShiftedSparseAttention.Plan.of(x, 4);
        INDArray grouped = ShiftedSparseAttention.group(x, p);
        assertEquals(List.of(2L * 2 * 3, 2L, 4L, 3L), List.of(grouped.size(0), grouped.size(1), grouped.size(2),
                grouped.size(3)));
        assertEquals(x, ShiftedSparseAttention.ungroup(grouped, p));
        // shifted half (heads 2, 3), last group: places 0, 1 hold positions 10, 11 (padding), places 2, 3 positions 0, 1
        INDArray lastShifted = grouped.get(org.nd4j.linalg.indexing.NDArrayIndex.point(0 * 6 + 1 * 3 + 2));
        assertEquals(0.0, lastShifted.get(org.nd4j.linalg.indexing.NDArrayIndex.all(),
                org.nd4j.linalg.indexing.NDArrayIndex.interval(0, 2)).amaxNumber().doubleValue());
        assertEquals(x.get(org.nd4j.linalg.indexing.NDArrayIndex.point(0), org.nd4j.linalg.indexing.NDArrayIndex
                .interval(2, 4), org.nd4j.linalg.indexing.NDArrayIndex.interval(0, 2)),
                lastShifted.get(org.nd4j.linalg.indexing.NDArrayIndex.all(),
                        org.nd4j.linalg.indexing.NDArrayIndex.interval(2, 4)));
    }

    @Test
    void noQueryIsAllowedALaterKeyInAnyGroup() {
        ShiftedSparseAttention.Plan p = new ShiftedSparseAttention.Plan(1, 4, 10, 4, 12, 3);
        INDArray m = ShiftedSparseAttention.allowedKeys(p, true, null, DataType.DOUBLE);
        int checked = 0;
        for (int half = 0; half < 2; half++) {
            for (int i = 0; i < 3; i++) {
                for (int a = 0; a < 4; a++) {
                    for (int c = 0; c < 4; c++) {
                        boolean allowed = m.getDouble(half * 3 + i, a, c) == 1.0;
                        long pa = p.position(half, i, a);
                        long pc = p.position(half, i, c);
                        assertTrue(!allowed || (pc <= pa && pc < 10), "half " + half + " group " + i + ": " + pa
                                + " may not see " + pc);
                        checked += allowed ? 1 : 0;
                    }
                }
            }
        }
        // every real position sees itself: at least 10 per half
        assertTrue(checked >= 20, "allowed entries " + checked);
    }

    @Test
    void oddHeadsOrGroupsAreRefusedWithTheReason() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ShiftedSparseAttention.check(3, 4));
        assertTrue(e.getMessage().contains("number of heads must be even (half of them work on shifted groups); got 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ShiftedSparseAttention.check(4, 5));
        assertTrue(e.getMessage().contains("even number of at least 2"), e.getMessage());
    }
}
