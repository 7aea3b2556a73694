package org.peft4j.examples;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.TargetModules;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.prefix.PrefixConfig;
import org.peft4j.core.prompt.PromptTuningConfig;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;

/**
 * The registry of methods the examples compare: one entry per method, in table order. A tuner
 * landing in the library becomes one more {@link #register} line here.
 *
 * <p>Thread-safety: the registry is filled once in the static initialiser and read-only afterwards.
 */
final class TuningMethods {

    /** Name of the baseline that does not train. */
    static final String ZERO_SHOT = "zero-shot";

    private static final Map<String, TuningMethod> REGISTRY = new LinkedHashMap<>();

    static {
        register(new TuningMethod(ZERO_SHOT, "the pretrained model as is, no tuning", null, 0));
        register(new TuningMethod("full", "full fine-tuning: every parameter trains",
                r -> FineTuningConfig.full(), 1e-3));
        register(new TuningMethod("head", "transfer learning: only the output layer `head` trains",
                r -> FineTuningConfig.transferLearning("head"), 3e-3));
        register(new TuningMethod("lora-qv", "LoRA on the attention query and value projections",
                r -> LoraConfig.builder().rank(r).alpha(2.0 * r).targetModulesRegex(CharModels.ATTENTION_QV).build(),
                5e-3));
        register(new TuningMethod("lora-all", "LoRA on every linear layer except the head (PEFT's all-linear)",
                r -> LoraConfig.builder().rank(r).alpha(2.0 * r).targetModules(TargetModules.ALL_LINEAR).build(),
                5e-3));
        register(new TuningMethod("qlora", "LoRA (all-linear) over the base held in 4-bit NF4 with double quantization",
                r -> QLoraConfig.of(LoraConfig.builder().rank(r).alpha(2.0 * r).targetModules(TargetModules.ALL_LINEAR)
                        .build(), QuantSpec.nf4().withDoubleQuant(true).withBlockSize(64)), 5e-3));
        register(new TuningMethod("ia3", "IA3: learned scales on keys, values and the MLP's inner activation",
                r -> Ia3Config.builder().targetModulesRegex(CharModels.IA3_TARGETS)
                        .feedforwardModulesRegex(CharModels.IA3_FEEDFORWARD).build(), 2e-2));
        register(new TuningMethod("adapter", "bottleneck adapters after attention and MLP (Houlsby)",
                r -> AdapterConfig.builder().houlsby().reductionFactor(4).build(), 3e-3));
        register(new TuningMethod("prefix", "prefix tuning: 8 trainable key/value prefixes per attention layer",
                r -> PrefixConfig.builder().numVirtualTokens(CharModels.VIRTUAL_TOKENS).build(), 1e-2));
        register(new TuningMethod("prompt", "prompt tuning: 8 trainable virtual tokens before the input",
                r -> PromptTuningConfig.builder().numVirtualTokens(CharModels.VIRTUAL_TOKENS).initRandom().build(),
                1e-2));
    }

    private TuningMethods() {
    }

    private static void register(TuningMethod m) {
        if (REGISTRY.putIfAbsent(m.name(), m) != null) {
            throw new IllegalStateException("method " + m.name() + " is registered twice");
        }
    }

    /** Every registered method, in table order. */
    static List<TuningMethod> all() {
        return List.copyOf(REGISTRY.values());
    }

    /**
     * The methods named in {@code spec}: a comma-separated list of names, or {@code all}. The
     * zero-shot baseline is always included first (every other row is compared with it).
     *
     * @throws IllegalArgumentException for an unknown or repeated name, naming the known ones
     */
    static List<TuningMethod> parse(String spec) {
        List<TuningMethod> out = new ArrayList<>();
        out.add(REGISTRY.get(ZERO_SHOT));
        if (spec.strip().equals("all")) {
            REGISTRY.values().stream().filter(TuningMethod::trains).forEach(out::add);
            return out;
        }
        for (String raw : spec.split(",")) {
            String n = raw.strip();
            if (n.isEmpty() || n.equals(ZERO_SHOT)) {
                continue;
            }
            TuningMethod m = REGISTRY.get(n);
            if (m == null) {
                throw new IllegalArgumentException("unknown method \"" + n + "\"; known: all, " + names());
            }
            if (out.contains(m)) {
                throw new IllegalArgumentException("method \"" + n + "\" is named twice");
            }
            out.add(m);
        }
        return out;
    }

    /** The registered names, comma-separated. */
    static String names() {
        return String.join(", ", REGISTRY.keySet());
    }
}
