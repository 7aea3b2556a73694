package org.peft4j.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.testing.FamilyCase;

/**
 * AdaLoRA on a small task whose solution needs all the rank in one layer: the teacher is the base
 * network with a change of rank {@value #NEEDED_RANK} (equal singular values) in {@code d1} and none
 * in {@code d2}. With a final budget of {@value #TARGET_R} triplets per layer on average over
 * {@code d1} and {@code d2}, the allocator can move the whole budget to {@code d1}; plain LoRA at
 * the same final budget (rank {@value #TARGET_R} in each layer) cannot express the change. So: the
 * budget schedule ends at {@code target_r} per layer, {@code d1} keeps more triplets than
 * {@code d2}, the held-out loss is well below LoRA's, and the saved {@code rank_pattern} reloads to
 * the same outputs. Deterministic: each graph's {@code init} reseeds ND4J's generator (seed 61), so
 * the teacher, the data and both adapters' initial values are the same on every run; full batches.
 */
class AdaLoraTaskTest {
    private static final int WIDTH = 8;
    private static final int NEEDED_RANK = 4;
    private static final int INIT_R = 4;
    private static final int TARGET_R = 2;
    private static final int STEPS = 200;
    private static final double LR = 0.03;

    /** Two tanh layers and a linear head whose weights are scaled up, so the hidden layers' errors show in the loss. */
    private static ComputationGraph base() {
        ComputationGraph g = new ComputationGraph(new NeuralNetConfiguration.Builder().seed(61).dataType(DataType.FLOAT)
                .updater(new Adam(LR)).graphBuilder().addInputs("in")
                .addLayer("d1", new DenseLayer.Builder().nIn(WIDTH).nOut(WIDTH).activation(Activation.TANH).build(), "in")
                .addLayer("d2", new DenseLayer.Builder().nIn(WIDTH).nOut(WIDTH).activation(Activation.TANH).build(), "d1")
                .addLayer("out", new OutputLayer.Builder(LossFunctions.LossFunction.MSE).nIn(WIDTH).nOut(WIDTH)
                        .activation(Activation.IDENTITY).build(), "d2")
                .setOutputs("out").build());
        g.init();
        g.getLayer("out").getParam("W").muli(5);
        return g;
    }

    /** A change of rank {@code r} whose {@code r} singular values are all {@code s}. */
    private static INDArray equalSingularValues(int r, double s) {
        INDArray u = Nd4j.create(DataType.FLOAT, WIDTH, WIDTH);
        INDArray v = Nd4j.create(DataType.FLOAT, WIDTH, WIDTH);
        Nd4j.getBlasWrapper().lapack().gesvd(Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH), Nd4j.create(DataType.FLOAT, WIDTH),
                u, v);
        return u.get(NDArrayIndex.all(), NDArrayIndex.interval(0, r)).mmul(v.get(NDArrayIndex.interval(0, r),
                NDArrayIndex.all())).muli(s);
    }

    private static double train(PeftModel peft, DataSet train, DataSet heldOut) {
        for (int i = 0; i < STEPS; i++) {
            peft.graph().fit(train);
        }
        return peft.graph().score(heldOut, false);
    }

    private static int kept(List<Boolean> pattern) {
        return (int) pattern.stream().filter(Boolean::booleanValue).count();
    }

    @Test
    void theBudgetMovesToTheLayerThatNeedsItBeatingLoraAtTheSameBudgetAndTheAdapterReloads(@TempDir Path tmp)
            throws Exception {
        ComputationGraph teacher = base();
        teacher.getLayer("d1").getParam("W").addi(equalSingularValues(NEEDED_RANK, 1.5));
        INDArray x = Nd4j.randn(DataType.FLOAT, 64, WIDTH);
        DataSet train = new DataSet(x, teacher.outputSingle(x));
        INDArray y = Nd4j.randn(DataType.FLOAT, 256, WIDTH);
        DataSet heldOut = new DataSet(y, teacher.outputSingle(y));

        AdaLoraConfig cfg = AdaLoraConfig.builder().initR(INIT_R).targetR(TARGET_R).alpha(8).totalStep(STEPS)
                .tinit(STEPS / 8).tfinal(STEPS * 3 / 8).deltaT(5).targetModules("d1", "d2").build();
        PeftModel ada = Peft.wrap(base(), cfg);
        AdaLoraAllocator allocator = AdaLoraAllocator.attach(ada);
        double adaLoss = train(ada, train, heldOut);

        PeftModel lora = Peft.wrap(base(), LoraConfig.builder().rank(TARGET_R).alpha(2.0 * TARGET_R)
                .targetModules("d1", "d2").build());
        double loraLoss = train(lora, train, heldOut);

        assertEquals(STEPS, allocator.step());
        assertEquals(TARGET_R * 2, allocator.keptTriplets(), "the budget ends at target_r per layer");
        List<Boolean> d1 = ((AdaLoraLayer) ada.adaptedLayers().get("d1")).rankPattern();
        List<Boolean> d2 = ((AdaLoraLayer) ada.adaptedLayers().get("d2")).rankPattern();
        String ranks = "ranks kept: d1 " + d1 + ", d2 " + d2;
        assertTrue(kept(d1) > kept(d2), "the layer that needs rank gets more: " + ranks);
        assertTrue(adaLoss < 0.5 * loraLoss, "held-out loss: AdaLoRA " + adaLoss + ", LoRA rank " + TARGET_R
                + " in both layers " + loraLoss + "; " + ranks);

        ada.saveAdapter(tmp);
        PeftModel reloaded = Peft.load(base(), tmp);
        FamilyCase.assertClose(ada.graph().outputSingle(y), reloaded.graph().outputSingle(y), 1e-6,
                "the saved rank_pattern reloads to the same outputs");
        assertEquals(d1, ((AdaLoraLayer) reloaded.adaptedLayers().get("d1")).rankPattern());
        assertEquals(d2, ((AdaLoraLayer) reloaded.adaptedLayers().get("d2")).rankPattern());
    }
}
