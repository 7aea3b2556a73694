package org.peft4j.lora;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;

/**
 * Reads {@link LoraConfig} from the keys of a Hugging Face PEFT {@code adapter_config.json};
 * registered with {@link java.util.ServiceLoader}. The shared keys (targets, exclusions, modules
 * to save, bias) are read by {@link Targeting#fromJson}. Keys we do not use (PEFT writes many) are
 * ignored; keys we use must have the right JSON type ({@code rank_pattern} and
 * {@code alpha_pattern}: objects of pattern to integer rank or number), and options we cannot
 * honour ({@code use_dora}, {@code fan_in_fan_out}, {@code layer_replication}) are refused rather
 * than silently dropped.
 *
 * <p>Thread-safety: stateless.
 */
public final class LoraConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return LoraConfig.PEFT_TYPE;
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
                throw new AdapterFormatException("adapter_config.json: use_dora=true is not supported by this version");
            }
            if (ConfigJson.bool(json, "fan_in_fan_out", false)) {
                throw new AdapterFormatException("adapter_config.json: fan_in_fan_out=true is not supported (DL4J "
                        + "dense weights are [nIn, nOut]; peft4j files always store [out, in])");
            }
            for (Map.Entry<String, Object> e : patterns(json, "rank_pattern").entrySet()) {
                Object v = e.getValue();
                if (!(v instanceof Integer || v instanceof Long) || ((Number) v).longValue() != ((Number) v).intValue()) {
                    throw new AdapterFormatException("adapter_config.json: \"rank_pattern\" value of \"" + e.getKey()
                            + "\" must be an integer; got " + ConfigJson.describe(v));
                }
                b.rankPattern(e.getKey(), ((Number) v).intValue());
            }
            for (Map.Entry<String, Object> e : patterns(json, "alpha_pattern").entrySet()) {
                if (!(e.getValue() instanceof Number)) {
                    throw new AdapterFormatException("adapter_config.json: \"alpha_pattern\" value of \"" + e.getKey()
                            + "\" must be a number; got " + ConfigJson.describe(e.getValue()));
                }
                b.alphaPattern(e.getKey(), ((Number) e.getValue()).doubleValue());
            }
            if (json.get("layer_replication") != null) {
                throw new AdapterFormatException("adapter_config.json: \"layer_replication\" "
                        + ConfigJson.describe(json.get("layer_replication")) + " is not supported; only null is");
            }
            Object init = json.getOrDefault("init_lora_weights", Boolean.TRUE);
            b.initLoraWeights("gaussian".equals(init) ? LoraInit.GAUSSIAN : LoraInit.KAIMING_UNIFORM);
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
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
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be an object of pattern to "
                    + "value; got " + ConfigJson.describe(v));
        }
        return (Map<String, Object>) v;
    }
}
