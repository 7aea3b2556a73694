package org.peft4j.lora.adalora;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.deeplearning4j.optimize.api.TrainingListener;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.adalora.internal.GradientViews;
import org.peft4j.lora.adalora.internal.OrthogonalRegularization;
import org.peft4j.lora.adalora.internal.RankAllocator;
import org.peft4j.lora.adalora.internal.SvdUpdate;

/**
 * Runs AdaLoRA's rank allocation during {@code fit}, as a DL4J {@link TrainingListener}: Hugging
 * Face PEFT's {@code update_and_allocate}, which a PEFT training loop calls after each optimizer
 * step. Attach it to the wrapped graph before training:
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(base, adaLoraConfig);
 * AdaLoraAllocator.attach(peft);
 * peft.graph().fit(data);            // totalStep optimizer steps
 * peft.saveAdapter(dir);             // the final ranks as rank_pattern
 * }</pre>
 *
 * <p>At optimizer step {@code t} (counted by this listener from 0; with {@code T = totalStep}):
 * <ul>
 *   <li>{@code t < T − tfinal}: the importance of every element of {@code A}, {@code E},
 *       {@code B} is updated from the step's gradient and the updated value; on the steps the
 *       budget schedule says (every {@code deltaT}-th after {@code tinit}), the triplets scoring
 *       lowest over all layers are pruned down to the budget: their singular value {@code E} is
 *       set to 0, and the layers' rank pattern records which are kept;</li>
 *   <li>{@code t = T − tfinal}: the final pruning to {@code targetR} per layer on average; that
 *       rank pattern is fixed;</li>
 *   <li>{@code t > T − tfinal}: the pruned singular values are set to 0 again after every step
 *       (the optimizer still moves them in between, as in PEFT).</li>
 * </ul>
 * The budget falls as a cubic from {@code initR·L} to {@code targetR·L} ({@code L} adapted layers);
 * formulas in {@link AdaLoraConfig} and {@code docs/lora-family.md}. DL4J calls
 * {@link #onGradientCalculation} with the step's raw gradient (before the updater changes it in
 * place), then the updater, then {@link #iterationDone}: this listener keeps a copy of the
 * gradient in between, as PEFT reads {@code p.grad} after {@code optimizer.step()}. The gradient is
 * the minibatch mean plus the orthogonal regularizer's, as PEFT's loss has it.
 *
 * <p>Binding also switches on AdaLoRA's orthogonal regularizer ({@code orth_reg_weight}): it is
 * averaged over the {@code 2·L} factors of the model, a number only the whole graph knows, so the
 * layers apply it once an allocator has told them {@code L} (a graph trained without an allocator
 * trains the SVD-form update at full rank without the regularizer). The setting travels with the
 * graph's configuration.
 *
 * <p>Refused: a model whose active adapter is not AdaLoRA, an adapter loaded with its rank pattern
 * (its layers hold the kept triplets only; PEFT would allocate again from those sizes, which this
 * does not do: train it without an allocator, or start a new adapter), merged adapters, and, while
 * training, a model whose active adapter or graph changed. The allocator's state (step count,
 * importance) is not part of {@link PeftModel#saveCheckpoint} files: run the budget schedule in one
 * {@code fit} session, in one process (not through {@code ParallelWrapper} or Spark, which call
 * listeners per worker).
 *
 * <p>Thread-safety: not thread-safe; one training loop uses it.
 */
public final class AdaLoraAllocator extends BaseTrainingListener {

    private final PeftModel peft;
    private final ComputationGraph graph;
    private final String adapter;
    private final AdaLoraConfig config;
    /** Adapted vertices in graph order. */
    private final List<String> layers;
    private final RankAllocator allocator;
    /** The copied gradients of the current step, by vertex: {A, E, B}. */
    private final Map<String, RankAllocator.Factors> gradients = new LinkedHashMap<>();
    private int step;

    /**
     * Binds an allocator to {@code peft}'s active adapter and graph, and switches on the
     * orthogonal regularizer of its layers; add it to {@code peft.graph()}'s listeners (or use
     * {@link #attach}).
     *
     * @throws IllegalArgumentException if the active adapter is not AdaLoRA
     * @throws IllegalStateException if its layers are merged, or hold a pruned rank pattern (a loaded adapter)
     */
    public AdaLoraAllocator(PeftModel peft) {
        this.peft = peft;
        this.adapter = peft.activeAdapter();
        PeftConfig c = peft.adapterConfig(adapter);
        if (!(c instanceof AdaLoraConfig)) {
            throw new IllegalArgumentException("the active adapter \"" + adapter + "\" is a " + c.peftType() + " adapter; "
                    + "AdaLoraAllocator allocates the ranks of an AdaLoRA adapter (AdaLoraConfig)");
        }
        this.config = (AdaLoraConfig) c;
        this.graph = peft.graph();
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, FrozenBaseLayer> e : peft.adaptedLayers().entrySet()) {
            FrozenBaseLayer f = e.getValue();
            SvdUpdate s = svdOf(f);
            if (f.isMerged()) {
                throw new IllegalStateException("layer \"" + e.getKey() + "\" has its adapter merged; call unmerge() "
                        + "before training with an AdaLoraAllocator");
            }
            if (s.rank() != s.initRank()) {
                throw new IllegalStateException("layer \"" + e.getKey() + "\" holds " + s.rank() + " of " + s.initRank()
                        + " triplets: the adapter was loaded with its rank_pattern, so its ranks are allocated already. "
                        + "Train it without an AdaLoraAllocator (fixed ranks), or start a new AdaLoRA adapter");
            }
            names.add(e.getKey());
        }
        this.layers = Collections.unmodifiableList(names);
        int matrices = 2 * layers.size();
        for (String v : layers) {
            FrozenBaseLayer f = (FrozenBaseLayer) graph.getLayer(v).conf().getLayer();
            setSvd(f, svdOf(f).withOrthRegMatrices(matrices));
        }
        this.allocator = new RankAllocator(config.initR() * layers.size(), config.targetR() * layers.size(),
                config.tinit(), config.tfinal(), config.totalStep(), config.deltaT(), config.beta1(), config.beta2());
    }

    /**
     * A new allocator for {@code peft}'s active adapter (see {@link #AdaLoraAllocator(PeftModel)}),
     * added to {@code peft.graph()}'s listeners.
     *
     * @throws IllegalStateException if the graph has an AdaLoraAllocator already
     */
    public static AdaLoraAllocator attach(PeftModel peft) {
        java.util.Collection<TrainingListener> present = peft.graph().getListeners();
        for (TrainingListener l : present == null ? List.<TrainingListener>of() : present) {
            if (l instanceof AdaLoraAllocator) {
                throw new IllegalStateException("the graph has an AdaLoraAllocator already; one allocator runs one "
                        + "adapter's budget schedule");
            }
        }
        AdaLoraAllocator a = new AdaLoraAllocator(peft);
        peft.graph().addListeners(a);
        return a;
    }

    private static SvdUpdate svdOf(Object layerConf) {
        if (layerConf instanceof AdaLoraDenseLayer d) {
            return d.svd();
        }
        if (layerConf instanceof AdaLoraConvolutionLayer c) {
            return c.svd();
        }
        throw new IllegalStateException("not an AdaLoRA layer: " + layerConf);
    }

    private static void setSvd(Object layerConf, SvdUpdate s) {
        if (layerConf instanceof AdaLoraDenseLayer d) {
            d.setSvd(s);
        } else {
            ((AdaLoraConvolutionLayer) layerConf).setSvd(s);
        }
    }

    /** Optimizer steps seen so far. */
    public int step() {
        return step;
    }

    /** The vertices whose ranks are allocated, in graph order. */
    public List<String> layers() {
        return layers;
    }

    /** The budget schedule's triplet budget at step {@code t} (PEFT's {@code budget_schedule}). */
    public int budgetAt(int t) {
        return allocator.schedule(t).budget();
    }

    /** Triplets kept over all layers now: those of their rank patterns, {@code initR} for a layer without one. */
    public int keptTriplets() {
        int n = 0;
        for (String v : layers) {
            SvdUpdate s = svdOf(graph.getLayer(v).conf().getLayer());
            boolean[] p = s.rankPattern();
            n += p == null ? s.rank() : SvdUpdate.kept(p);
        }
        return n;
    }

    private void checkBound(Model model) {
        if (model != graph) {
            throw new IllegalStateException("this AdaLoraAllocator is bound to another graph; attach a new one to "
                    + "the graph that trains");
        }
        String active = peft.activeAdapter();
        if (!adapter.equals(active) || peft.graph() != graph) {
            throw new IllegalStateException("the model's active adapter changed from \"" + adapter + "\" to \"" + active
                    + "\" while its AdaLoraAllocator ran; remove the allocator from the old graph's listeners and attach "
                    + "a new one for the adapter that trains");
        }
    }

    /** Keeps a copy of the step's gradient of every {@code A}, {@code E}, {@code B}, as the importance needs it. */
    @Override
    public void onGradientCalculation(Model model) {
        checkBound(model);
        gradients.clear();
        RankAllocator.Action action = allocator.action(step);
        if (action == RankAllocator.Action.FINAL_MASK || action == RankAllocator.Action.APPLY_FIXED) {
            return;
        }
        double scale = graph.conf().isMiniBatch() ? 1.0 / graph.batchSize() : 1.0;
        for (String v : layers) {
            Layer l = graph.getLayer(v);
            GradientViews views = (GradientViews) l;
            RankAllocator.Factors g = RankAllocator.Factors.of(views.gradientView(SvdUpdate.LORA_A),
                    views.gradientView(SvdUpdate.LORA_E), views.gradientView(SvdUpdate.LORA_B));
            for (double[] a : new double[][] {g.a(), g.e(), g.b()}) {
                for (int i = 0; i < a.length; i++) {
                    a[i] *= scale;
                }
            }
            SvdUpdate s = svdOf(l.conf().getLayer());
            addOrthogonal(g.a(), s.orthogonalRegularization(SvdUpdate.LORA_A), l.getParam(SvdUpdate.LORA_A));
            addOrthogonal(g.b(), s.orthogonalRegularization(SvdUpdate.LORA_B), l.getParam(SvdUpdate.LORA_B));
            gradients.put(v, g);
        }
    }

    /** Adds the regularizer's gradient (PEFT's loss has it) to a copied gradient. */
    private static void addOrthogonal(double[] grad, Regularization orth, INDArray param) {
        if (orth == null) {
            return;
        }
        double[] d = ((OrthogonalRegularization) orth).gradient(OrthogonalRegularization.fortranOrder(param));
        for (int i = 0; i < grad.length; i++) {
            grad[i] += d[i];
        }
    }

    /** PEFT's {@code update_and_allocate} for this step, after the optimizer has updated the parameters. */
    @Override
    public void iterationDone(Model model, int iteration, int epoch) {
        checkBound(model);
        RankAllocator.Action action = allocator.action(step);
        switch (action) {
            case UPDATE, UPDATE_AND_MASK -> {
                for (String v : layers) {
                    Layer l = graph.getLayer(v);
                    RankAllocator.Factors g = gradients.get(v);
                    if (g == null) {
                        throw new IllegalStateException("no gradient was seen for step " + step + "; the allocator must "
                                + "be one of the training graph's listeners from the start of fit");
                    }
                    allocator.updateImportance(v, RankAllocator.Factors.of(l.getParam(SvdUpdate.LORA_A),
                            l.getParam(SvdUpdate.LORA_E), l.getParam(SvdUpdate.LORA_B)), g);
                }
                if (action == RankAllocator.Action.UPDATE_AND_MASK) {
                    apply(allocator.maskToBudget(allocator.schedule(step).budget()));
                }
            }
            case FINAL_MASK -> {
                apply(allocator.maskToBudget(allocator.schedule(step).budget()));
                allocator.reset();
            }
            case APPLY_FIXED -> {
                for (String v : layers) {
                    boolean[] p = svdOf(graph.getLayer(v).conf().getLayer()).rankPattern();
                    if (p != null) {
                        zeroPruned(graph.getLayer(v), p);
                    }
                }
            }
            default -> throw new AssertionError(action);
        }
        gradients.clear();
        step++;
    }

    /** Sets the pruned singular values to 0 and records the pattern on each layer. */
    private void apply(Map<String, boolean[]> keep) {
        for (Map.Entry<String, boolean[]> e : keep.entrySet()) {
            Layer l = graph.getLayer(e.getKey());
            zeroPruned(l, e.getValue());
            Object conf = l.conf().getLayer();
            setSvd(conf, svdOf(conf).withRankPattern(e.getValue()));
        }
    }

    private static void zeroPruned(Layer l, boolean[] keep) {
        INDArray e = l.getParam(SvdUpdate.LORA_E);
        double[] m = new double[keep.length];
        for (int i = 0; i < m.length; i++) {
            m[i] = keep[i] ? 1 : 0;
        }
        e.muli(Nd4j.createFromArray(m).castTo(e.dataType()).reshape(e.shape()));
    }

    @Override
    public String toString() {
        return "AdaLoraAllocator(adapter=" + adapter + ", step=" + step + ", layers=" + layers.size() + ", " + config + ")";
    }
}
