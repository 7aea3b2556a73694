package org.peft4j.core.testing;

import org.deeplearning4j.gradientcheck.GradientCheckUtil;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One way to run DL4J's {@link GradientCheckUtil} in double precision for every test: central
 * differences with {@code eps = 1e-6}, relative error at most {@code 1e-5} above an absolute
 * floor of {@code 1e-9}, all parameters.
 */
public final class GradientChecks {

    private GradientChecks() {
    }

    /** Sets ND4J's default types to double, as GradientCheckUtil requires. */
    public static void useDoublePrecision() {
        Nd4j.setDefaultDataTypes(DataType.DOUBLE, DataType.DOUBLE);
    }

    /** True if every parameter gradient of {@code g} matches finite differences. */
    public static boolean passes(ComputationGraph g, INDArray input, INDArray labels) {
        return passes(g, input, labels, null, null);
    }

    /** As {@link #passes(ComputationGraph, INDArray, INDArray)} with a feature mask and a label mask (either may be null). */
    public static boolean passes(ComputationGraph g, INDArray input, INDArray labels, INDArray inputMask,
                                 INDArray labelMask) {
        return GradientCheckUtil.checkGradients(new GradientCheckUtil.GraphConfig()
                .net(g)
                .inputs(new INDArray[] {input})
                .labels(new INDArray[] {labels})
                .inputMask(inputMask == null ? null : new INDArray[] {inputMask})
                .labelMask(labelMask == null ? null : new INDArray[] {labelMask})
                .epsilon(1e-6)
                .maxRelError(1e-5)
                .minAbsoluteError(1e-9)
                .print(GradientCheckUtil.PrintMode.FAILURES_ONLY)
                .exitOnFirstError(false));
    }
}
