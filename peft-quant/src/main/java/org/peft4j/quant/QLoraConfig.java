package org.peft4j.quant;

import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.AdapterFileKeys;
import org.peft4j.lora.LoraBased;
import org.peft4j.lora.LoraConfig;

/**
 * QLoRA: a {@link LoraConfig} whose targeted layers keep their frozen base weight as 4-bit blocks
 * ({@link QuantSpec}: NF4 by default, block 64, optionally double-quantized), and, with
 * {@link #quantizeFrozenLayers(boolean)}, every other dense-type layer too.
 *
 * <pre>{@code
 * PeftModel peft = Peft.wrap(graph, QLoraConfig.of(
 *         LoraConfig.builder().rank(16).alpha(32).targetModules(TargetModules.ALL_LINEAR).build(),
 *         QuantSpec.nf4().withDoubleQuant(true).withBlockSize(64)));
 * }</pre>
 *
 * DoRA ({@code LoraConfig.Builder#useDora}) works over the 4-bit base as over a float one, on the
 * dequantized weights (as PEFT does with bitsandbytes): the norm's product {@code Aᵀ·W} runs on the
 * 4-bit kernel and {@code ‖W‖} per column comes from one dequantization per layer. Targets are dense
 * layers only; embeddings and convolutions keep no 4-bit form and are refused.
 *
 * <p>The adapter file is an ordinary LoRA adapter ({@code peft_type} {@code "LORA"}), exactly as PEFT
 * saves an adapter trained on a bitsandbytes 4-bit base; load it onto a quantized base with
 * {@code Peft.load(base, dir, c -> QLoraConfig.of((LoraConfig) c, spec), false)}.
 *
 * <p>Thread-safety: immutable.
 */
public final class QLoraConfig implements PeftConfig, LoraBased {

    private final LoraConfig lora;
    private final QuantSpec spec;
    private final boolean quantizeFrozenLayers;

    private QLoraConfig(LoraConfig lora, QuantSpec spec, boolean quantizeFrozenLayers) {
        this.lora = Objects.requireNonNull(lora, "lora config must not be null");
        this.spec = Objects.requireNonNull(spec, "quant spec must not be null");
        this.quantizeFrozenLayers = quantizeFrozenLayers;
    }

    /** QLoRA with the targeted layers' base weights quantized by {@code spec}. */
    public static QLoraConfig of(LoraConfig lora, QuantSpec spec) {
        return new QLoraConfig(lora, spec, false);
    }

    /** The same config, also quantizing (or not) the dense layers that carry no adapter. */
    public QLoraConfig quantizeFrozenLayers(boolean on) {
        return new QLoraConfig(lora, spec, on);
    }

    @Override
    public LoraConfig lora() {
        return lora;
    }

    public QuantSpec spec() {
        return spec;
    }

    public boolean quantizesFrozenLayers() {
        return quantizeFrozenLayers;
    }

    @Override
    public String peftType() {
        return lora.peftType();
    }

    @Override
    public Targeting targeting() {
        return lora.targeting();
    }

    @Override
    public FrozenDenseLayer adapt(Target target) {
        return new QLoraDenseLayer(target, lora, spec);
    }

    @Override
    public FrozenDenseLayer freeze(Target target) {
        return quantizeFrozenLayers ? new QuantizedDenseLayer(target, spec) : new FrozenDenseLayer(target);
    }

    /**
     * LoRA's keys, plus this config's 4-bit spec under {@code "peft4j"}.{@code "quantized_base"}
     * ({@code quant_type}, {@code blocksize}, {@code double_quant}, {@code frozen_layers_quantized}):
     * the file stays a LoRA adapter that applies to a float base too, and a checkpoint refuses to
     * resume over a base held otherwise.
     */
    @Override
    public Map<String, Object> methodConfig() {
        Map<String, Object> m = new TreeMap<>(lora.methodConfig());
        Map<String, Object> ext = new TreeMap<>();
        if (m.get("peft4j") instanceof Map<?, ?> loraExt) {
            loraExt.forEach((k, v) -> ext.put(String.valueOf(k), v));
        }
        Map<String, Object> form = new TreeMap<>();
        form.put("quant_type", spec.type().name().toLowerCase(Locale.ROOT));
        form.put("blocksize", spec.blockSize());
        form.put("double_quant", spec.doubleQuant());
        form.put("frozen_layers_quantized", quantizeFrozenLayers);
        ext.put(AdapterFileKeys.BASE_FORM, form);
        m.put("peft4j", ext);
        return m;
    }

    @Override
    public String layoutSignature() {
        return lora.layoutSignature() + " quant=" + spec + " frozenQuantized=" + quantizeFrozenLayers;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QLoraConfig && ((QLoraConfig) o).lora.equals(lora) && ((QLoraConfig) o).spec.equals(spec)
                && ((QLoraConfig) o).quantizeFrozenLayers == quantizeFrozenLayers;
    }

    @Override
    public int hashCode() {
        return Objects.hash(lora, spec, quantizeFrozenLayers);
    }

    @Override
    public String toString() {
        return "QLoraConfig(" + lora + ", " + spec + ", quantizeFrozenLayers=" + quantizeFrozenLayers + ")";
    }
}
