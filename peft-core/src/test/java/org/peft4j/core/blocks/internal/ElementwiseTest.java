package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * {@link Elementwise}: the sum is bit-for-bit ND4J's {@code add} on float32 arrays in 'c' and 'f'
 * order, over more than one block and with a partial last block, on row ranges that start at an
 * offset of their buffer, written in place; the arrays it must not read as one run (another type,
 * another order, another shape, strided views) are refused.
 */
class ElementwiseTest {

    private static float[] floats(INDArray a) {
        return a.dup('c').data().asFloat();
    }

    @Test
    void sumIsBitForBitNd4jsAdd() {
        Nd4j.getRandom().setSeed(7);
        for (char order : new char[] {'c', 'f'}) {
            // 3·Elementwise.BLOCK + 37 elements: full blocks and a partial one
            INDArray a = Nd4j.randn(DataType.FLOAT, 37, 3 * Elementwise.BLOCK / 37 + 2).dup(order);
            INDArray b = Nd4j.randn(DataType.FLOAT, a.shape()).mul(1e3).dup(order);
            assertTrue(Elementwise.handles(a, b));
            INDArray sum = Nd4j.createUninitialized(DataType.FLOAT, a.shape(), order);
            Elementwise.add(a, b, sum);
            assertArrayEquals(floats(a.add(b)), floats(sum), 0f, "sum, order " + order);
            INDArray x = a.dup(order);
            Elementwise.add(x, b, x);
            assertArrayEquals(floats(a.add(b)), floats(x), 0f, "sum into the first operand, order " + order);
        }
    }

    @Test
    void rowRangesAtAnOffsetAreReadAndWrittenInPlace() {
        INDArray big = Nd4j.randn(DataType.FLOAT, 40, 9);
        INDArray other = Nd4j.randn(DataType.FLOAT, 40, 9);
        INDArray a = big.get(NDArrayIndex.interval(10, 30), NDArrayIndex.all());
        INDArray b = other.get(NDArrayIndex.interval(5, 25), NDArrayIndex.all());
        assertTrue(Elementwise.handles(a, b));
        INDArray expected = a.add(b);
        INDArray before = big.dup();
        Elementwise.add(a, b, a);
        assertArrayEquals(floats(expected), floats(a), 0f);
        assertEquals(before.get(NDArrayIndex.interval(0, 10), NDArrayIndex.all()),
                big.get(NDArrayIndex.interval(0, 10), NDArrayIndex.all()), "rows before the range untouched");
        assertEquals(before.get(NDArrayIndex.interval(30, 40), NDArrayIndex.all()),
                big.get(NDArrayIndex.interval(30, 40), NDArrayIndex.all()), "rows after the range untouched");
    }

    @Test
    void arraysThatAreNotOneRunOfFloatsAreRefused() {
        INDArray a = Nd4j.rand(DataType.FLOAT, 6, 5);
        assertFalse(Elementwise.handles(a, a.castTo(DataType.DOUBLE)), "double");
        assertFalse(Elementwise.handles(a.castTo(DataType.DOUBLE), a.castTo(DataType.DOUBLE)), "both double");
        assertFalse(Elementwise.handles(a, a.dup('f')), "orders differ");
        assertFalse(Elementwise.handles(a, Nd4j.rand(DataType.FLOAT, 5, 6)), "shapes differ");
        INDArray columns = Nd4j.rand(DataType.FLOAT, 6, 10).get(NDArrayIndex.all(), NDArrayIndex.interval(0, 5));
        assertFalse(Elementwise.handles(a, columns), "strided view");
        assertFalse(Elementwise.handles(a, a.transpose().dup('c').transpose()), "transposed view");
    }
}
