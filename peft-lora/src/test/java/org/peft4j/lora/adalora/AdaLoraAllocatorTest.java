package org.peft4j.lora.adalora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.adalora.internal.GradientViews;
import org.peft4j.lora.adalora.internal.OrthogonalRegularization;
import org.peft4j.lora.adalora.internal.RankAllocator;
import org.peft4j.lora.testing.FamilyCase;

/**
 * The rank allocation against the committed references of {@code family_reference.py}: the
 * importance and its smoothing over two steps, the triplet scores, the masking to a budget
 * ({@code adalora/allocator}), the orthogonal regularizer and its gradient, and PEFT's budget
 * schedule and per-step action ({@code adalora/budget_schedule.json}); then the listener itself,
 * fed the same two steps through a graph's parameter and gradient views, ends with the same
 * rank pattern and masked singular values.
 */
class AdaLoraAllocatorTest {
    private static final double TOL = 1e-6;
    private static final String[] FACTORS = {"lora_A", "lora_E", "lora_B"};
    private static final String[] KEYS = {AdaLoraLayer.LORA_A, AdaLoraLayer.LORA_E, AdaLoraLayer.LORA_B};

    private static INDArray[] tensors(FamilyCase c, String prefix, String layer) {
        INDArray[] t = new INDArray[3];
        for (int i = 0; i < 3; i++) {
            t[i] = c.ref(prefix + "." + layer + "." + FACTORS[i]);
        }
        return t;
    }

    private static RankAllocator.Factors factors(FamilyCase c, String prefix, String layer) {
        INDArray[] t = tensors(c, prefix, layer);
        return RankAllocator.Factors.of(t[0], t[1], t[2]);
    }

    @Test
    void importanceScoresAndMaskingEqualPefts() {
        FamilyCase c = FamilyCase.of("adalora/allocator");
        JsonNode info = c.info();
        RankAllocator alloc = new RankAllocator(info.get("init_bgt").asInt(), 2, 0, 0, 10, 1,
                info.get("beta1").asDouble(), info.get("beta2").asDouble());
        for (int step = 1; step <= 2; step++) {
            for (JsonNode l : info.get("layers")) {
                String layer = l.asText();
                alloc.updateImportance(layer, factors(c, "step" + step + ".param", layer),
                        factors(c, "step" + step + ".grad", layer));
                for (int f = 0; f < 3; f++) {
                    String key = "." + layer + "." + FACTORS[f];
                    INDArray avgI = c.ref("step" + step + ".exp_avg_ipt" + key);
                    INDArray avgU = c.ref("step" + step + ".exp_avg_unc" + key);
                    FamilyCase.assertClose(avgI.reshape(alloc.averageImportance(layer, f).shape()),
                            alloc.averageImportance(layer, f), TOL, "step " + step + " exp_avg_ipt" + key);
                    FamilyCase.assertClose(avgU.reshape(alloc.averageUncertainty(layer, f).shape()),
                            alloc.averageUncertainty(layer, f), TOL, "step " + step + " exp_avg_unc" + key);
                }
            }
        }
        for (JsonNode l : info.get("layers")) {
            String layer = l.asText();
            FamilyCase.assertClose(c.ref("triplet_score." + layer), Nd4j.createFromArray(alloc.tripletScores(layer)), TOL,
                    "triplet scores of " + layer);
        }
        Map<String, boolean[]> keep = alloc.maskToBudget(info.get("budget").asInt());
        for (JsonNode l : info.get("layers")) {
            String layer = l.asText();
            assertArrayEquals(flags(info.get("rank_pattern").get(layer + ".lora_E")), keep.get(layer), layer);
        }
    }

    private static boolean[] flags(JsonNode list) {
        boolean[] b = new boolean[list.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = list.get(i).asBoolean();
        }
        return b;
    }

    @Test
    void withNothingToPruneEveryTripletIsKept() {
        RankAllocator alloc = new RankAllocator(4, 4, 0, 0, 5, 1, 0.85, 0.85);
        Nd4j.getRandom().setSeed(3);
        RankAllocator.Factors p = RankAllocator.Factors.of(Nd4j.randn(DataType.DOUBLE, 2, 3), Nd4j.randn(DataType.DOUBLE, 2),
                Nd4j.randn(DataType.DOUBLE, 4, 2));
        alloc.updateImportance("a", p, p);
        alloc.updateImportance("b", p, p);
        // init_r == target_r: PEFT's kthvalue(k = 0) fails; nothing is pruned
        Map<String, boolean[]> keep = alloc.maskToBudget(4);
        assertArrayEquals(new boolean[] {true, true}, keep.get("a"));
        assertArrayEquals(new boolean[] {true, true}, keep.get("b"));
    }

    @Test
    void orthogonalRegularizationAndItsGradientEqualPefts() {
        FamilyCase c = FamilyCase.of("adalora/allocator");
        JsonNode info = c.info();
        double coefficient = info.get("orth_reg_weight").asDouble() / info.get("orth_reg_matrices").asInt();
        OrthogonalRegularization onA = new OrthogonalRegularization(coefficient, true, 3, 4);
        OrthogonalRegularization onB = new OrthogonalRegularization(coefficient, false, 5, 3);
        double total = 0;
        for (JsonNode l : info.get("layers")) {
            INDArray a = c.ref("step2.param." + l.asText() + ".lora_A");
            INDArray b = c.ref("step2.param." + l.asText() + ".lora_B");
            total += onA.score(a, 0, 0) + onB.score(b, 0, 0);
            FamilyCase.assertClose(c.ref("orth_reg_grad." + l.asText() + ".lora_A"), onA.gradient(a), 1e-12, "dR/dA");
            FamilyCase.assertClose(c.ref("orth_reg_grad." + l.asText() + ".lora_B"), onB.gradient(b), 1e-12, "dR/dB");
            INDArray grad = Nd4j.zeros(DataType.DOUBLE, a.shape());
            onA.apply(a, grad, 1.0, 0, 0);
            FamilyCase.assertClose(onA.gradient(a), grad, 0, "apply adds the gradient");
            // DL4J's updater hands parameters over as flat views of their 'f'-ordered elements
            INDArray flat = Nd4j.zeros(DataType.DOUBLE, a.length());
            onA.apply(a.dup('f').reshape('f', new long[] {a.length()}), flat, 1.0, 0, 0);
            FamilyCase.assertClose(onA.gradient(a), flat.reshape('f', a.shape()), 0, "apply on a flat view");
        }
        assertEquals(info.get("orth_reg_loss_term").asDouble(), total, 1e-12, "w · R");
    }

    @Test
    void budgetScheduleAndStepActionsArePefts() throws IOException, URISyntaxException {
        Path f = Path.of(AdaLoraAllocatorTest.class.getResource("/family/adalora/budget_schedule.json").toURI());
        JsonNode root = new ObjectMapper().readTree(Files.readAllBytes(f));
        int rows = 0;
        for (JsonNode s : root.get("schedules")) {
            RankAllocator alloc = new RankAllocator(s.get("init_bgt").asInt(), s.get("target_bgt").asInt(),
                    s.get("tinit").asInt(), s.get("tfinal").asInt(), s.get("total_step").asInt(), s.get("deltaT").asInt(),
                    0.85, 0.85);
            for (JsonNode r : s.get("rows")) {
                int step = r.get("step").asInt();
                String where = s.get("name").asText() + " step " + step;
                assertEquals(r.get("schedule_budget").asInt(), alloc.schedule(step).budget(), where + " budget");
                assertEquals(r.get("schedule_mask").asBoolean(), alloc.schedule(step).mask(), where + " mask");
                String action = switch (alloc.action(step)) {
                    case UPDATE -> "update_ipt";
                    case UPDATE_AND_MASK -> "update_ipt+mask_to_budget";
                    case FINAL_MASK -> "final_mask_to_budget";
                    case APPLY_FIXED -> "apply_fixed_rank_pattern";
                };
                assertEquals(r.get("action").asText(), action, where + " action");
                rows++;
            }
        }
        assertEquals(38, rows, "every row of the three schedules was checked");
    }

    private static PeftModel qv(AdaLoraConfig.Builder cfg) {
        return Peft.wrap(AdaLoraGraphs.qv(DataType.FLOAT, new Sgd(0.1), 5), cfg.targetModules("q", "v").build());
    }

    /**
     * The fixture's two steps fed through the listener: gradients written into the layers' gradient
     * views before {@code onGradientCalculation}, the updated values into the parameters before
     * {@code iterationDone}. With {@code init_r} 3, {@code target_r} 1, {@code total_step} 8 the
     * schedule masks at the second step to budget 4, the fixture's.
     */
    @Test
    void theListenerAllocatesAsPeftOverTwoSteps() {
        FamilyCase c = FamilyCase.of("adalora/allocator");
        PeftModel peft = qv(AdaLoraConfig.builder().initR(3).targetR(1).totalStep(8).orthRegWeight(0));
        ComputationGraph g = peft.graph();
        AdaLoraAllocator alloc = AdaLoraAllocator.attach(peft);
        assertEquals(6, alloc.budgetAt(0));
        assertEquals(4, alloc.budgetAt(1), "the second step masks to the fixture's budget");
        Nd4j.getRandom().setSeed(1);
        g.setInputs(Nd4j.rand(DataType.FLOAT, 1, 4)); // one example: the mean gradient is the raw one
        g.setLabels(Nd4j.rand(DataType.FLOAT, 1, 2));
        g.computeGradientAndScore();
        for (int step = 1; step <= 2; step++) {
            for (String layer : List.of("q", "v")) {
                Layer l = g.getLayer(layer);
                INDArray[] grads = tensors(c, "step" + step + ".grad", layer);
                for (int f = 0; f < 3; f++) {
                    INDArray view = ((GradientViews) l).gradientView(KEYS[f]);
                    view.assign(grads[f].reshape(view.shape()));
                }
            }
            alloc.onGradientCalculation(g);
            for (String layer : List.of("q", "v")) {
                INDArray[] params = tensors(c, "step" + step + ".param", layer);
                for (int f = 0; f < 3; f++) {
                    INDArray p = g.getLayer(layer).getParam(KEYS[f]);
                    p.assign(params[f].reshape(p.shape()));
                }
            }
            alloc.iterationDone(g, step - 1, 0);
        }
        assertEquals(2, alloc.step());
        assertEquals(4, alloc.keptTriplets());
        for (String layer : List.of("q", "v")) {
            AdaLoraLayer a = (AdaLoraLayer) g.getLayer(layer).conf().getLayer();
            List<Boolean> expected = new ArrayList<>();
            c.info().get("rank_pattern").get(layer + ".lora_E").forEach(n -> expected.add(n.asBoolean()));
            assertEquals(expected, a.rankPattern(), layer + " rank pattern");
            INDArray e = c.ref("masked_lora_E." + layer);
            FamilyCase.assertClose(e.reshape(3), g.getLayer(layer).getParam(AdaLoraLayer.LORA_E), 1e-7,
                    layer + " masked E");
        }
    }

    /** After the final step the pattern is fixed: singular values the optimizer moved are pruned again. */
    @Test
    void afterTheFinalStepPrunedSingularValuesStayZero() {
        PeftModel peft = qv(AdaLoraConfig.builder().initR(3).targetR(1).totalStep(4).tfinal(1).deltaT(1));
        AdaLoraAllocator.attach(peft);
        ComputationGraph g = peft.graph();
        Nd4j.getRandom().setSeed(2);
        var ds = new org.nd4j.linalg.dataset.DataSet(Nd4j.rand(DataType.FLOAT, 6, 4), Nd4j.rand(DataType.FLOAT, 6, 2));
        for (int i = 0; i < 6; i++) {
            g.fit(ds);
            if (i == 3) {
                // T − tfinal = 3 was the final allocation: 1 triplet per layer on average
                assertEquals(2, ((AdaLoraAllocator) g.getListeners().iterator().next()).keptTriplets());
            }
        }
        int kept = 0;
        for (String layer : List.of("q", "v")) {
            AdaLoraLayer a = (AdaLoraLayer) g.getLayer(layer).conf().getLayer();
            INDArray e = g.getLayer(layer).getParam(AdaLoraLayer.LORA_E);
            for (int i = 0; i < 3; i++) {
                if (a.rankPattern().get(i)) {
                    kept++;
                    assertTrue(e.getDouble(i) != 0, layer + ": a kept singular value trains");
                } else {
                    assertTrue(e.getDouble(i) == 0, layer + ": a pruned singular value is 0 after every step");
                }
            }
        }
        assertEquals(2, kept);
    }

    @Test
    void refusesWhatItCannotAllocate() {
        PeftModel lora = Peft.wrap(qv(AdaLoraConfig.builder().totalStep(3)).reconstructBase(),
                LoraConfig.builder().targetModules("q").build());
        IllegalArgumentException notAdaLora = assertThrows(IllegalArgumentException.class,
                () -> new AdaLoraAllocator(lora));
        assertTrue(notAdaLora.getMessage().contains("is a LORA adapter"), notAdaLora.getMessage());

        PeftModel peft = qv(AdaLoraConfig.builder().initR(3).targetR(1).totalStep(8));
        AdaLoraAllocator.attach(peft);
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> AdaLoraAllocator.attach(peft));
        assertTrue(twice.getMessage().contains("has an AdaLoraAllocator already"), twice.getMessage());

        PeftModel pruned = Peft.wrap(peft.reconstructBase(), AdaLoraConfig.builder().initR(3).targetR(1).totalStep(8)
                .rankPattern("q", List.of(true, false, true)).targetModules("q", "v").build());
        IllegalStateException loaded = assertThrows(IllegalStateException.class, () -> new AdaLoraAllocator(pruned));
        assertTrue(loaded.getMessage().contains("holds 2 of 3 triplets"), loaded.getMessage());

        // an allocator notices when its model trains another adapter
        PeftModel two = qv(AdaLoraConfig.builder().initR(3).targetR(1).totalStep(8));
        AdaLoraAllocator a = AdaLoraAllocator.attach(two);
        two.addAdapter("other", two.config());
        two.setAdapter("other");
        IllegalStateException switched = assertThrows(IllegalStateException.class, () -> a.iterationDone(two.graph(), 0, 0));
        assertTrue(switched.getMessage().contains("active adapter changed"), switched.getMessage());
    }
}
