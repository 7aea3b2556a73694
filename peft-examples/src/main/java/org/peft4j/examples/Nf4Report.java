package org.peft4j.examples;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.quant.QuantSpec;
import org.peft4j.quant.QuantizedTensor;

/**
 * What 4-bit NF4 does to real pretrained weights: every {@code DenseLayer} weight {@code W [nIn, nOut]}
 * of a graph is quantized the way QLoRA holds its frozen base ({@link QuantizedTensor#quantize(INDArray,
 * QuantSpec)}, the same call {@code QLoraDenseLayer} makes), dequantized, and compared with the
 * float32 original: relative Frobenius error {@code ||W - deq(q(W))||_F / ||W||_F}, largest absolute
 * error, and bits per parameter (codes plus scales, exact bytes held).
 *
 * <p>Thread-safety: stateless.
 */
final class Nf4Report {

    /**
     * One weight matrix.
     *
     * @param layer layer name
     * @param params elements of {@code W}
     * @param bytes bytes the quantized tensor holds
     * @param sqError squared Frobenius norm of the error
     * @param sqNorm squared Frobenius norm of {@code W}
     * @param maxAbsError largest absolute error
     * @param maxAbsWeight largest absolute weight
     */
    record Row(String layer, long params, long bytes, double sqError, double sqNorm, double maxAbsError,
               double maxAbsWeight) {

        double bitsPerParam() {
            return 8.0 * bytes / params;
        }

        double relFrobenius() {
            return Math.sqrt(sqError / sqNorm);
        }
    }

    private Nf4Report() {
    }

    /** One row per dense layer of {@code graph} (in topological order), quantized with {@code spec}. */
    static List<Row> of(ComputationGraph graph, QuantSpec spec) {
        List<Row> rows = new ArrayList<>();
        for (int idx : graph.topologicalSortOrder()) {
            if (!graph.getVertices()[idx].hasLayer()) {
                continue;
            }
            Layer l = graph.getVertices()[idx].getLayer();
            if (!(l.conf().getLayer() instanceof DenseLayer)) {
                continue;
            }
            INDArray w = l.getParam("W").castTo(DataType.FLOAT);
            QuantizedTensor q = QuantizedTensor.quantize(w, spec);
            INDArray err = q.toINDArray().castTo(DataType.DOUBLE).subi(w.castTo(DataType.DOUBLE));
            double sqErr = err.norm2Number().doubleValue();
            double sqNorm = w.castTo(DataType.DOUBLE).norm2Number().doubleValue();
            rows.add(new Row(l.conf().getLayer().getLayerName(), w.length(), q.memoryBytes(), sqErr * sqErr,
                    sqNorm * sqNorm, err.amaxNumber().doubleValue(), w.amaxNumber().doubleValue()));
        }
        return rows;
    }

    /** All rows together: parameters, bits per parameter, relative Frobenius error, worst max-abs error. */
    static Row total(List<Row> rows) {
        long params = 0;
        long bytes = 0;
        double sqErr = 0;
        double sqNorm = 0;
        double maxErr = 0;
        double maxW = 0;
        for (Row r : rows) {
            params += r.params();
            bytes += r.bytes();
            sqErr += r.sqError();
            sqNorm += r.sqNorm();
            maxErr = Math.max(maxErr, r.maxAbsError());
            maxW = Math.max(maxW, r.maxAbsWeight());
        }
        return new Row("all " + rows.size() + " dense layers", params, bytes, sqErr, sqNorm, maxErr, maxW);
    }

    /** A markdown table, one line per layer and a total line. */
    static String markdown(List<Row> rows, QuantSpec spec) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT,
                "NF4 (%s, block %d%s) of every dense weight, against float32:%n%n", spec.type(), spec.blockSize(),
                spec.doubleQuant() ? ", double quantization" : ""));
        sb.append("| layer | params | bits/param | rel. Frobenius error | max abs error | max abs weight |\n");
        sb.append("|---|---:|---:|---:|---:|---:|\n");
        List<Row> all = new ArrayList<>(rows);
        all.add(total(rows));
        for (Row r : all) {
            sb.append(String.format(Locale.ROOT, "| %s | %,d | %.3f | %.4f | %.4g | %.4g |%n", r.layer(), r.params(),
                    r.bitsPerParam(), r.relFrobenius(), r.maxAbsError(), r.maxAbsWeight()));
        }
        return sb.toString();
    }

    /** The same as CSV with a header line. */
    static String csv(List<Row> rows) {
        StringBuilder sb = new StringBuilder("layer,params,bytes,bits_per_param,rel_frobenius_error,max_abs_error,"
                + "max_abs_weight\n");
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "%s,%d,%d,%.6f,%.6g,%.6g,%.6g%n", r.layer(), r.params(), r.bytes(),
                    r.bitsPerParam(), r.relFrobenius(), r.maxAbsError(), r.maxAbsWeight()));
        }
        return sb.toString();
    }
}
