package org.peft4j.examples;

import java.util.List;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.TargetModules;
import org.peft4j.core.adapter.AdapterConfig;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.prefix.PrefixConfig;
import org.peft4j.core.prompt.PromptTuningConfig;
import org.peft4j.lora.LoraConfig;
import org.peft4j.lora.adalora.AdaLoraAllocator;
import org.peft4j.lora.adalora.AdaLoraConfig;
import org.peft4j.lora.loha.LoHaConfig;
import org.peft4j.lora.lokr.LoKrConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;

/**
 * The registry of methods the examples compare: one entry per method, in table order. A tuner
 * landing in the library becomes one more entry here.
 *
 * <p>Thread-safety: the registry is immutable.
 */
final class TuningMethods {

    /** Name of the baseline that does not train. */
    static final String ZERO_SHOT = "zero-shot";

    private static final MethodRegistry REGISTRY = new MethodRegistry(ZERO_SHOT, List.of(
            new TuningMethod(ZERO_SHOT, "the pretrained model as is, no tuning", null, 0),
            new TuningMethod("full", "full fine-tuning: every parameter trains",
                    r -> FineTuningConfig.full(), 1e-3),
            new TuningMethod("head", "transfer learning: only the output layer `head` trains",
                    r -> FineTuningConfig.transferLearning("head"), 3e-3),
            new TuningMethod("lora-qv", "LoRA on the attention query and value projections",
                    r -> LoraConfig.builder().rank(r).alpha(2.0 * r).targetModulesRegex(CharModels.ATTENTION_QV).build(),
                    5e-3),
            new TuningMethod("lora-all", "LoRA on every linear layer except the head (PEFT's all-linear)",
                    r -> LoraConfig.builder().rank(r).alpha(2.0 * r).targetModules(TargetModules.ALL_LINEAR).build(),
                    5e-3),
            new TuningMethod("dora", "DoRA: LoRA (all-linear) with a trained magnitude per output feature",
                    r -> LoraConfig.builder().rank(r).alpha(2.0 * r).useDora(true)
                            .targetModules(TargetModules.ALL_LINEAR).build(), 5e-3),
            new TuningMethod("qlora", "LoRA (all-linear) over the base held in 4-bit NF4 with double quantization",
                    r -> QLoraConfig.of(LoraConfig.builder().rank(r).alpha(2.0 * r).targetModules(TargetModules.ALL_LINEAR)
                            .build(), QuantSpec.nf4().withDoubleQuant(true).withBlockSize(64)), 5e-3),
            new TuningMethod("loha", "LoHa (Hadamard product of two rank-r/2 pairs: LoRA-r's parameter count) on every "
                    + "linear layer except the head",
                    r -> LoHaConfig.builder().rank(Math.max(1, r / 2)).alpha(2.0 * Math.max(1, r / 2))
                            .targetModules(TargetModules.ALL_LINEAR).build(), 5e-3),
            new TuningMethod("lokr", "LoKr (Kronecker product of two small factors, rank r) on every linear layer except "
                    + "the head",
                    r -> LoKrConfig.builder().rank(r).alpha(r).targetModules(TargetModules.ALL_LINEAR).build(), 1e-2),
            new TuningMethod("adalora", "AdaLoRA (all-linear): rank 1.5r at start, pruned to r on average by importance "
                    + "while training",
                    TuningMethods::adaLora, 5e-3, p -> AdaLoraAllocator.attach(p)),
            new TuningMethod("ia3", "IA3: learned scales on keys, values and the MLP's inner activation",
                    r -> Ia3Config.builder().targetModulesRegex(CharModels.IA3_TARGETS)
                            .feedforwardModulesRegex(CharModels.IA3_FEEDFORWARD).build(), 2e-2),
            new TuningMethod("adapter", "bottleneck adapters after attention and MLP (Houlsby)",
                    r -> AdapterConfig.builder().houlsby().reductionFactor(4).build(), 3e-3),
            new TuningMethod("prefix", "prefix tuning: 8 trainable key/value prefixes per attention layer",
                    r -> PrefixConfig.builder().numVirtualTokens(CharModels.VIRTUAL_TOKENS).build(), 1e-2),
            new TuningMethod("prompt", "prompt tuning: 8 trainable virtual tokens before the input",
                    r -> PromptTuningConfig.builder().numVirtualTokens(CharModels.VIRTUAL_TOKENS).initRandom().build(),
                    1e-2)));

    private TuningMethods() {
    }

    /**
     * AdaLoRA with PEFT's recommended ratio of initial to final rank (12 to 8) scaled to rank
     * {@code r}, and its budget schedule over the run: a tenth of the steps before pruning, the last
     * fifth with the ranks fixed.
     */
    private static AdaLoraConfig adaLora(int r, int steps) {
        return AdaLoraConfig.builder().initR(r + (r + 1) / 2).targetR(r).alpha(2.0 * r)
                .totalStep(steps).tinit(steps / 10).tfinal(steps / 5).deltaT(Math.max(1, steps / 30))
                .targetModules(TargetModules.ALL_LINEAR).build();
    }

    /** Every registered method, in table order. */
    static List<TuningMethod> all() {
        return REGISTRY.all();
    }

    /**
     * The methods named in {@code spec}: a comma-separated list of names, or {@code all}. The
     * zero-shot baseline is always included first (every other row is compared with it).
     *
     * @throws IllegalArgumentException for an unknown or repeated name, naming the known ones
     */
    static List<TuningMethod> parse(String spec) {
        return REGISTRY.parse(spec);
    }

    /** The registered names, comma-separated. */
    static String names() {
        return REGISTRY.names();
    }
}
