package org.peft4j.lora.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.lycoris.LycorisLayer;

/**
 * The checks every LyCORIS-style method runs against its reference fixtures ({@link FamilyCase}).
 *
 * <p>Thread-safety: stateless.
 */
public final class FixtureChecks {

    /** Double-precision graphs: the only differences left are the order of float64 sums. */
    public static final double TOL = 1e-10;

    private FixtureChecks() {
    }

    /**
     * Loads the case's PEFT adapter onto a double-precision graph built from its base weights and
     * asserts that the output, {@code ΔW}, the merged weight of {@code mergeAndUnload()} (in the
     * stock layer's layout) and that graph's output equal the reference's.
     */
    public static void matchesReference(FamilyCase c) throws IOException {
        PeftModel peft = Peft.load(c.base(DataType.DOUBLE), c.dir());
        INDArray x = c.x(DataType.DOUBLE);
        FamilyCase.assertClose(c.ref("output"), peft.graph().outputSingle(x), TOL, "output");
        Layer layer = peft.graph().getLayer(c.module());
        INDArray delta = ((LycorisLayer) layer.conf().getLayer()).adapter().deltaWeight(layer.paramTable());
        INDArray expectedDelta = c.ref("delta_weight");
        FamilyCase.assertClose(expectedDelta.reshape('c', expectedDelta.size(0), expectedDelta.length() / expectedDelta.size(0)),
                delta, TOL, "delta weight");
        ComputationGraph merged = peft.mergeAndUnload();
        FamilyCase.assertClose(c.stockWeight(c.ref("merged_weight")), merged.getLayer(c.module()).getParam("W"), TOL,
                "merged weight");
        FamilyCase.assertClose(c.ref("output"), merged.outputSingle(x), TOL, "merged output");
    }

    /**
     * Loads the case's PEFT adapter onto {@code base}, saves it to {@code out} and asserts that the
     * file holds PEFT's tensors bit for bit, that every config key is one of {@code peftKeys} and
     * has the value PEFT wrote, and that of PEFT's keys exactly {@code notWritten} are left out.
     */
    public static void savedAdapterIsPefts(FamilyCase c, ComputationGraph base, Path out, Set<String> peftKeys,
                                           Set<String> notWritten) throws IOException {
        PeftModel peft = Peft.load(base, c.dir());
        peft.saveAdapter(out);
        PeftFiles.assertSameTensors(c.adapterTensors(), out);
        Map<String, Object> written = FamilyCase.readConfig(out);
        Map<String, Object> peftWrote = c.adapterConfig();
        Set<String> ours = PeftFiles.assertPeftKeysOnly(written, peftKeys);
        Set<String> missing = new TreeSet<>(peftWrote.keySet());
        missing.removeAll(ours);
        assertEquals(notWritten, missing, "PEFT's keys not written");
        for (String k : ours) {
            assertEquals(peftWrote.get(k), written.get(k), "value of " + k);
        }
    }
}
