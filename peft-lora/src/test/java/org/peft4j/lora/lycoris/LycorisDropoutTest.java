package org.peft4j.lora.lycoris;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.lora.loha.LoHaConfig;
import org.peft4j.lora.lokr.LoKrConfig;
import org.peft4j.lora.testing.FamilyCase;

/**
 * Rank and module dropout of LoHa and LoKr, on the reference fixtures' dense layers (identity
 * activation, double precision), driving the layer directly so that each training pass's output
 * and backward pass can be compared with the reference {@code ΔW}: rank dropout zeroes the update
 * of whole output features and rescales the others by the fraction kept (LoHa always; LoKr only with
 * {@code rank_dropout_scale}); module dropout drops the whole update of a pass; the draw of a
 * forward pass is the one its backward pass uses (factor gradients and epsilon); nothing is dropped
 * outside training.
 */
class LycorisDropoutTest {

    private static final double TOL = 1e-10;

    /** One training pass of a loaded fixture layer: its update {@code out − base(x)}, gradients and epsilon. */
    private record Pass(INDArray update, Gradient gradient, INDArray epsilon) {
    }

    private static final class Fixture {
        final FamilyCase c;
        final Layer layer;
        final INDArray x;
        final INDArray baseOut;
        final INDArray delta;
        final LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();

        Fixture(String name, UnaryOperator<PeftConfig> configure) throws IOException {
            c = FamilyCase.of(name);
            // the file's adapter, wrapped with "pre" trained in full so that the layer passes an epsilon down
            PeftConfig fromFile = Peft.load(c.base(DataType.DOUBLE), c.dir()).config();
            PeftModel peft = Peft.wrap(c.baseWithUpstream(DataType.DOUBLE), configure.apply(fromFile));
            peft.graph().initGradientsView();
            layer = peft.graph().getLayer(c.module());
            Map<String, SafeTensor> tensors = c.adapterTensors();
            for (FrozenBaseLayer.SavedTensor st : ((LycorisLayer) layer.conf().getLayer()).adapter().savedTensors()) {
                layer.getParam(st.paramKey()).assign(tensors.get("base_model.model." + c.module() + "." + st.fileSuffix())
                        .toINDArray(DataType.DOUBLE));
            }
            x = c.x(DataType.DOUBLE);
            baseOut = x.mmul(c.ref("base_weight").transpose()).addiRowVector(c.ref("base_bias"));
            delta = c.ref("delta_weight");
        }

        Pass train() {
            layer.setInput(x, mgr);
            INDArray out = layer.activate(true, mgr).dup();
            Pair<Gradient, INDArray> g = layer.backpropGradient(Nd4j.onesLike(out), mgr);
            return new Pass(out.sub(baseOut), g.getFirst(), g.getSecond().dup());
        }

        INDArray evalUpdate() {
            layer.setInput(x, mgr);
            return layer.activate(false, mgr).sub(baseOut);
        }

        /** 1 for the output features the update of {@code p} reaches, 0 for the dropped ones. */
        INDArray kept(Pass p) {
            INDArray k = Nd4j.zeros(DataType.DOUBLE, delta.size(0));
            for (int o = 0; o < k.length(); o++) {
                if (p.update().getColumn(o).amaxNumber().doubleValue() > 0) {
                    k.putScalar(o, 1);
                }
            }
            return k;
        }
    }

    @Test
    void lohaRankDropoutDropsOutputFeaturesRescalesTheRestAndBackpropUsesTheSameDraw() throws IOException {
        Fixture f = new Fixture("loha/dense", c -> ((LoHaConfig) c).toBuilder().rankDropout(0.25).modulesToSave("pre").build());
        INDArray injected = f.c.ref("rank_dropout_keep");
        Set<String> patterns = new HashSet<>();
        boolean sawReferenceDraw = false;
        Nd4j.getRandom().setSeed(3);
        for (int draw = 0; draw < 60; draw++) {
            Pass p = f.train();
            INDArray keep = f.kept(p);
            patterns.add(keep.toString());
            double mean = keep.meanNumber().doubleValue();
            INDArray effective = mean == 0 ? f.delta.mul(0) : f.delta.mulColumnVector(keep.reshape(-1, 1).div(mean));
            FamilyCase.assertClose(f.x.mmul(effective.transpose()), p.update(), TOL, "update of draw " + draw);
            if (keep.equals(injected)) {
                sawReferenceDraw = true;
                FamilyCase.assertClose(f.x.mmul(f.c.ref("delta_weight_rank_dropped").transpose()), p.update(), TOL,
                        "the reference's rank-dropped update");
            }
            // backward: the dropped features' rows of dL/dΔW are zero, so are their rows of hada_w1_a's gradient
            INDArray gW1a = p.gradient().getGradientFor("hadaW1a");
            for (int o = 0; o < keep.length(); o++) {
                assertEquals(keep.getDouble(o) != 0, gW1a.getRow(o).amaxNumber().doubleValue() > 0, "row " + o);
            }
            INDArray expectedEps = Nd4j.ones(DataType.DOUBLE, f.x.size(0), f.delta.size(0))
                    .mmul(f.c.ref("base_weight").add(effective));
            FamilyCase.assertClose(expectedEps, p.epsilon(), TOL, "epsilon of draw " + draw);
        }
        assertTrue(sawReferenceDraw, "the draw [1, 0, 1, 1] came up");
        assertTrue(patterns.size() > 4, "draws differ: " + patterns);
        FamilyCase.assertClose(f.x.mmul(f.delta.transpose()), f.evalUpdate(), TOL, "no dropout outside training");
    }

    @Test
    void lokrRescalesKeptRowsOnlyWithRankDropoutScale() throws IOException {
        for (boolean scale : new boolean[] {false, true}) {
            Fixture f = new Fixture("lokr/dense",
                    c -> ((LoKrConfig) c).toBuilder().rankDropout(0.5).rankDropoutScale(scale).modulesToSave("pre").build());
            Nd4j.getRandom().setSeed(4);
            for (int draw = 0; draw < 10; draw++) {
                Pass p = f.train();
                INDArray keep = f.kept(p);
                double mean = keep.meanNumber().doubleValue();
                double factor = scale && mean > 0 ? 1 / mean : 1;
                INDArray effective = f.delta.mulColumnVector(keep.reshape(-1, 1).mul(factor));
                FamilyCase.assertClose(f.x.mmul(effective.transpose()), p.update(), TOL, "scale " + scale + ", draw " + draw);
            }
        }
    }

    @Test
    void aDrawThatDropsEveryFeatureLeavesTheBaseOutputInsteadOfNaN() throws IOException {
        Fixture f = new Fixture("loha/dense", c -> ((LoHaConfig) c).toBuilder().rankDropout(0.95).modulesToSave("pre").build());
        Nd4j.getRandom().setSeed(5);
        boolean sawAllDropped = false;
        for (int draw = 0; draw < 20; draw++) {
            Pass p = f.train();
            assertFalse(p.update().isNaN().any() || p.epsilon().isNaN().any(), "NaN in draw " + draw);
            sawAllDropped |= p.update().amaxNumber().doubleValue() == 0;
        }
        assertTrue(sawAllDropped);
    }

    @Test
    void moduleDropoutLeavesTheWholeUpdateOutOfAPassAndItsBackward() throws IOException {
        Fixture f = new Fixture("loha/dense", c -> ((LoHaConfig) c).toBuilder().moduleDropout(0.5).modulesToSave("pre").build());
        Nd4j.getRandom().setSeed(6);
        int skipped = 0;
        int applied = 0;
        for (int draw = 0; draw < 30; draw++) {
            Pass p = f.train();
            double gradient = 0;
            for (String key : new String[] {"hadaW1a", "hadaW1b", "hadaW2a", "hadaW2b"}) {
                gradient += p.gradient().getGradientFor(key).amaxNumber().doubleValue();
            }
            if (p.update().amaxNumber().doubleValue() == 0) {
                skipped++;
                assertEquals(0.0, gradient, "a skipped pass gives the factors no gradient");
                FamilyCase.assertClose(Nd4j.ones(DataType.DOUBLE, 3, 4).mmul(f.c.ref("base_weight")), p.epsilon(), TOL,
                        "epsilon of a skipped pass");
            } else {
                applied++;
                assertTrue(gradient > 0);
                FamilyCase.assertClose(f.x.mmul(f.delta.transpose()), p.update(), TOL, "a pass that keeps the module");
            }
        }
        assertTrue(skipped > 5 && applied > 5, skipped + " skipped, " + applied + " applied");
        FamilyCase.assertClose(f.x.mmul(f.delta.transpose()), f.evalUpdate(), TOL, "no dropout outside training");
    }
}
