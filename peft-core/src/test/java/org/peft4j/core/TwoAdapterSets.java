package org.peft4j.core;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.TinyGraphs;

/**
 * Two recognisable sets of adapters over one base model, A and B, for the tests of atomic saves:
 * each a default adapter plus one named {@code "second"}, of other methods and layouts in the two
 * sets (so their files differ in names and sizes), every parameter set to a value telling the set
 * and the adapter. {@link #view} says which set a directory loads as.
 */
final class TwoAdapterSets {

    private TwoAdapterSets() {
    }

    static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    /** A model holding set {@code set} ('A' or 'B'), its default adapter active. */
    static PeftModel model(char set) {
        boolean a = set == 'A';
        PeftModel m = Peft.wrap(base(), a ? Ia3Config.builder().targetModules("dense1").build()
                : Ia3Config.builder().targetModules("dense0", "dense2").build());
        fill(m.graph().params(), set, 0);
        m.addAdapter("second", a ? Ia3Config.builder().targetModules("dense0").build()
                : AdapterConfig.builder().insertAfter("dense1").bottleneckSize(3).build());
        m.setAdapter("second");
        fill(m.graph().params(), set, 1);
        m.setAdapter(PeftModel.DEFAULT_ADAPTER);
        return m;
    }

    private static void fill(INDArray params, char set, int adapter) {
        long n = params.length();
        INDArray v = Nd4j.linspace(1, n, n, DataType.FLOAT).muli(set == 'A' ? 0.01 : -0.02).addi(adapter * 3 + 1);
        params.assign(v.reshape(params.shape()));
    }

    /**
     * Loads {@code dir} and returns the set it holds, 'A' or 'B': both adapters, with every
     * parameter of that set.
     *
     * @throws AssertionError if it loads as neither (a mixture, a missing adapter)
     * @throws Exception what loading threw
     */
    static char view(Path dir) throws IOException {
        PeftModel loaded = Peft.load(base(), dir);
        if (!loaded.adapterNames().equals(List.of(PeftModel.DEFAULT_ADAPTER, "second"))) {
            throw new AssertionError(dir + " loads adapters " + loaded.adapterNames());
        }
        for (char set : new char[] {'A', 'B'}) {
            PeftModel expected = model(set);
            if (same(expected, loaded, PeftModel.DEFAULT_ADAPTER) && same(expected, loaded, "second")) {
                return set;
            }
        }
        throw new AssertionError(dir + " loads as neither set: " + loaded.adapterConfig(PeftModel.DEFAULT_ADAPTER)
                + " with " + loaded.adapterParameters(PeftModel.DEFAULT_ADAPTER) + " / " + loaded.adapterConfig("second"));
    }

    private static boolean same(PeftModel expected, PeftModel loaded, String name) {
        Map<String, Map<String, INDArray>> e = expected.adapterParameters(name);
        Map<String, Map<String, INDArray>> l = loaded.adapterParameters(name);
        return e.equals(l);
    }
}
