package org.peft4j.lora;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.core.spi.KeyPolicy;

/**
 * Reads {@link LoraConfig} from the keys of a Hugging Face PEFT {@code adapter_config.json};
 * registered with {@link java.util.ServiceLoader}. The shared keys (targets, exclusions, layer
 * indices, modules to save, bias) are read by {@link Targeting#fromJson}. Every key's treatment is
 * the table {@link #keyPolicy()} (honoured, ignored, or refused unless at a value that changes
 * nothing); keys we use must have the right JSON type ({@code rank_pattern} and
 * {@code alpha_pattern}: objects of pattern to integer rank or number), and {@code use_dora} is
 * refused rather than silently dropped.
 *
 * <p>Thread-safety: stateless.
 */
public final class LoraConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return LoraConfig.PEFT_TYPE;
    }

    @Override
    public KeyPolicy keyPolicy() {
        return LoraKeyPolicy.POLICY;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        LoraConfig.Builder b = LoraConfig.builder().targeting(Targeting.fromJson(json, Targeting.Scope.TARGETS_AND_BIAS));
        try {
            b.rank(ConfigJson.requiredInt(json, "r"));
            b.alpha(ConfigJson.requiredNumber(json, "lora_alpha"));
            Double dropout = ConfigJson.optionalNumber(json, "lora_dropout");
            if (dropout != null) {
                b.dropout(dropout);
            }
            b.useRsLora(ConfigJson.bool(json, "use_rslora", false));
            if (ConfigJson.bool(json, "use_dora", false)) {
                throw new AdapterFormatException("use_dora=true is not supported by this version");
            }
            for (Map.Entry<String, Object> e : patterns(json, "rank_pattern").entrySet()) {
                Object v = e.getValue();
                if (!(v instanceof Integer || v instanceof Long) || ((Number) v).longValue() != ((Number) v).intValue()) {
                    throw new AdapterFormatException("\"rank_pattern\" value of \"" + e.getKey()
                            + "\" must be an integer; got " + ConfigJson.describe(v));
                }
                b.rankPattern(e.getKey(), ((Number) v).intValue());
            }
            for (Map.Entry<String, Object> e : patterns(json, "alpha_pattern").entrySet()) {
                if (!(e.getValue() instanceof Number)) {
                    throw new AdapterFormatException("\"alpha_pattern\" value of \"" + e.getKey()
                            + "\" must be a number; got " + ConfigJson.describe(e.getValue()));
                }
                b.alphaPattern(e.getKey(), ((Number) e.getValue()).doubleValue());
            }
            Object init = json.getOrDefault("init_lora_weights", Boolean.TRUE);
            b.initLoraWeights("gaussian".equals(init) ? LoraInit.GAUSSIAN : LoraInit.KAIMING_UNIFORM);
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException(e.getMessage(), e);
        }
    }

    /** An object of pattern key to value (empty when absent or null). */
    @SuppressWarnings("unchecked")
    private static Map<String, Object> patterns(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (v == null) {
            return Map.of();
        }
        if (!(v instanceof Map)) {
            throw new AdapterFormatException("\"" + key + "\" must be an object of pattern to "
                    + "value; got " + ConfigJson.describe(v));
        }
        return (Map<String, Object>) v;
    }
}
