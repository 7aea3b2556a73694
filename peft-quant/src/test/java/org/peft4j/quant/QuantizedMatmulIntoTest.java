package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

class QuantizedMatmulIntoTest {

    private static final QuantizedTensor W = QuantizedTensor.quantize(
            Nd4j.rand(DataType.FLOAT, 96, 40).subi(0.5).data().asFloat(), new long[] {96, 40}, QuantSpec.nf4());

    /** Writing into y gives what the allocating product returns, for C-order and F-order inputs, overwriting y. */
    @Test
    void productIntoYEqualsTheAllocatingProduct() {
        for (char order : new char[] {'c', 'f'}) {
            INDArray x = Nd4j.rand(DataType.FLOAT, 5, 96).dup(order);
            INDArray y = Nd4j.valueArrayOf(new long[] {5, 40}, Float.NaN, DataType.FLOAT);
            QuantizedMatmul.mmul(x, W, y);
            float[] expected = QuantizedMatmul.mmul(x, W).data().asFloat();
            float[] actual = y.data().asFloat();
            for (int i = 0; i < expected.length; i++) {
                assertTrue(Math.abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.abs(expected[i])),
                        "order " + order + ", element " + i + ": " + actual[i] + " vs " + expected[i]);
            }
        }
    }

    /** The transposed product into C- and F-order epsilons, from C- and F-order gradients, equals the allocating one. */
    @Test
    void transposedProductIntoEpsEqualsTheAllocatingProduct() {
        for (char gOrder : new char[] {'c', 'f'}) {
            for (char epsOrder : new char[] {'c', 'f'}) {
                INDArray g = Nd4j.rand(DataType.FLOAT, 5, 40).dup(gOrder);
                INDArray eps = Nd4j.valueArrayOf(new long[] {5, 96}, Float.NaN, DataType.FLOAT).dup(epsOrder);
                QuantizedMatmul.mmulTransposed(g, W, eps);
                INDArray expected = QuantizedMatmul.mmulTransposed(g, W);
                for (int r = 0; r < 5; r++) {
                    for (int c = 0; c < 96; c++) {
                        double e = expected.getDouble(r, c);
                        double a = eps.getDouble(r, c);
                        assertTrue(Math.abs(e - a) <= 1e-5 * (1 + Math.abs(e)),
                                "g " + gOrder + ", eps " + epsOrder + ", [" + r + ", " + c + "]: " + a + " vs " + e);
                    }
                }
            }
        }
    }

    @Test
    void outputThatIsAViewOrOfTheWrongShapeIsRejected() {
        INDArray x = Nd4j.rand(DataType.FLOAT, 5, 96);
        INDArray big = Nd4j.create(DataType.FLOAT, 6, 40);
        IllegalArgumentException view = assertThrows(IllegalArgumentException.class,
                () -> QuantizedMatmul.mmul(x, W, big.get(NDArrayIndex.interval(0, 5), NDArrayIndex.all())));
        assertTrue(view.getMessage().contains("view"), view.getMessage());
        assertThrows(IllegalArgumentException.class, () -> QuantizedMatmul.mmul(x, W, Nd4j.create(DataType.FLOAT, 5, 41)));
        assertThrows(IllegalArgumentException.class,
                () -> QuantizedMatmul.mmul(Nd4j.rand(DataType.FLOAT, 1, 96), W, Nd4j.create(DataType.FLOAT, 1, 40)));
    }
}
