package org.peft4j.core.internal;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.graph.GraphVertex;
import org.deeplearning4j.nn.conf.layers.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.TargetKind;
import org.peft4j.core.TargetModules;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.Messages;
import org.peft4j.core.spi.Vertices;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Resolves a config's {@link Targeting} against a base graph: which layers are adapted and which
 * train in full, with Hugging Face PEFT's rules (see {@link Targeting}) and its diagnosis when
 * nothing is left to adapt. Matching only reads layer names and configurations.
 *
 * <p>Thread-safety: stateless.
 */
public final class TargetSelection {

    private static final Logger LOG = LoggerFactory.getLogger(TargetSelection.class);

    private TargetSelection() {
    }

    /** The layers adapted ({@code targets}) and trained in full ({@code saved}), by vertex name, in graph order. */
    public record Selected(Set<String> targets, Set<String> saved) {
    }

    /**
     * Resolves {@code config}'s targeting on {@code base}.
     *
     * @throws IllegalArgumentException if {@code modulesToSave} chooses no layer or a layer without
     *     parameters, if a chosen target is of a kind the method does not support (naming the
     *     layer, its kind and the supported kinds), or if nothing is left to adapt; the message
     *     lists the graph's layers
     */
    public static Selected select(ComputationGraph base, PeftConfig config) {
        ComputationGraphConfiguration conf = base.getConfiguration();
        Targeting t = config.targeting();
        Set<String> saved = savedModules(base, t);
        Set<String> targets = new LinkedHashSet<>();
        TargetModules tm = t.targetModules();
        if (tm == null) {
            return new Selected(targets, saved);
        }
        Set<String> outputs = new java.util.HashSet<>(conf.getNetworkOutputs());
        Set<String> excluded = new TreeSet<>();
        boolean exclusionUsed = false;
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            String name = e.getKey();
            Layer l = Vertices.layerOf(e.getValue());
            TargetKind kind = TargetKind.of(l);
            if (t.isExcluded(name) || saved.contains(name)) {
                exclusionUsed |= t.isExcluded(name);
                if (tm.matches(name, kind == TargetKind.DENSE, outputs.contains(name))) {
                    excluded.add(name);
                }
                continue;
            }
            if (!tm.matches(name, kind == TargetKind.DENSE, outputs.contains(name)) || !t.typeAllowed(l)) {
                continue;
            }
            if (kind == null || !config.supportedTargetKinds().contains(kind)) {
                throw new IllegalArgumentException("target module \"" + name + "\" is a "
                        + (l == null ? e.getValue().getClass().getSimpleName() : l.getClass().getSimpleName())
                        + (kind == null ? ", which is of no target kind" : " (kind " + kind + ")") + ", and "
                        + config.peftType() + " adapts " + describe(config.supportedTargetKinds())
                        + "; choose targets of those kinds, or exclude it with excludeModules");
            }
            targets.add(name);
        }
        if (targets.isEmpty()) {
            String layers = "; layers are: " + Vertices.describeLayers(conf);
            if (!excluded.isEmpty()) {
                throw new IllegalArgumentException("no layer left to adapt: targetModules " + bounded(tm) + " chose only "
                        + Messages.list(excluded) + ", which excludeModules "
                        + (t.excludeModules() == null ? "[]" : bounded(t.excludeModules()))
                        + " or modulesToSave " + Messages.list(t.modulesToSave()) + " exclude" + layers);
            }
            throw new IllegalArgumentException("no layer matched targetModules " + bounded(tm)
                    + (t.targetTypes().isEmpty() ? "" : " with targetTypes " + t.targetTypes().stream()
                    .map(Class::getSimpleName).sorted().toList()) + layers);
        }
        if (t.excludeModules() != null && !exclusionUsed) {
            LOG.warn("excludeModules {} matched no layer, so nothing was excluded; layers are: {}", bounded(t.excludeModules()),
                    Vertices.describeLayers(conf));
        }
        return new Selected(targets, saved);
    }

    /** The layers {@code modulesToSave} chooses; each must have parameters, and together they must be at least one. */
    private static Set<String> savedModules(ComputationGraph base, Targeting t) {
        Set<String> saved = new LinkedHashSet<>();
        if (t.modulesToSave().isEmpty()) {
            return saved;
        }
        ComputationGraphConfiguration conf = base.getConfiguration();
        for (Map.Entry<String, GraphVertex> e : conf.getVertices().entrySet()) {
            if (Vertices.layerOf(e.getValue()) == null || !t.isModuleToSave(e.getKey())) {
                continue;
            }
            if (base.getLayer(e.getKey()).numParams() == 0) {
                throw new IllegalArgumentException("modulesToSave: layer \"" + e.getKey() + "\" has no parameters to train");
            }
            saved.add(e.getKey());
        }
        if (saved.isEmpty()) {
            throw new IllegalArgumentException("modulesToSave " + Messages.list(t.modulesToSave()) + ": no layer matched; layers are: "
                    + Vertices.describeLayers(conf));
        }
        return saved;
    }

    /** A selection as a message shows it: a config's target list can be megabytes long. */
    private static String bounded(TargetModules tm) {
        return Messages.shorten(tm, Messages.MAX_VALUE_CHARS);
    }

    private static String describe(Set<TargetKind> kinds) {
        List<String> d = kinds.stream().sorted().map(TargetKind::describe).toList();
        return d.isEmpty() ? "no layer in place" : String.join(", ", d);
    }
}
