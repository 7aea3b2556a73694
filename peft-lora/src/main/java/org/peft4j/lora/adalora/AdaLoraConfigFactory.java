package org.peft4j.lora.adalora;

import java.util.List;
import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads {@link AdaLoraConfig} from the keys of a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "ADALORA"}); registered with {@link java.util.ServiceLoader}. The shared
 * keys (targets, exclusions, modules to save, bias) are read by {@link Targeting#fromJson}; an
 * absent AdaLoRA key takes PEFT's default, except {@code total_step}, which PEFT requires too.
 *
 * <p>Keys PEFT's AdaLoRA ignores are ignored here as well: {@code r} (AdaLoRA sizes by
 * {@code init_r}), {@code use_rslora}, {@code alpha_pattern} (AdaLoRA scales every layer by
 * {@code lora_alpha}; a non-empty one is logged) and {@code init_lora_weights} (a boolean or a
 * string; the file's tensors replace the initial values). Refused: {@code use_dora} and a
 * non-empty {@code loftq_config} (PEFT refuses both with AdaLoRA), {@code fan_in_fan_out},
 * {@code lora_bias}, {@code layer_replication}, a {@code lora_alpha} that is not positive (PEFT
 * would then scale by the rank), and a {@code rank_pattern} that is not an object of
 * {@code "<layer>.lora_E"} to {@code init_r} booleans.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdaLoraConfigFactory implements PeftConfigFactory {
    private static final Logger LOG = LoggerFactory.getLogger(AdaLoraConfigFactory.class);

    @Override
    public String peftType() {
        return AdaLoraConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        AdaLoraConfig.Builder b = AdaLoraConfig.builder()
                .targeting(Targeting.fromJson(json, Targeting.Scope.TARGETS_AND_BIAS));
        try {
            refuse(json);
            Integer i = ConfigJson.optionalInt(json, "init_r");
            if (i != null) {
                b.initR(i);
            }
            i = ConfigJson.optionalInt(json, "target_r");
            if (i != null) {
                b.targetR(i);
            }
            Double alpha = ConfigJson.optionalNumber(json, "lora_alpha");
            if (alpha != null) {
                if (!(alpha > 0)) {
                    throw new AdapterFormatException("adapter_config.json: lora_alpha " + alpha + " is not supported: "
                            + "AdaLoRA then scales by the rank instead; only a positive lora_alpha is");
                }
                b.alpha(alpha);
            }
            Double d = ConfigJson.optionalNumber(json, "lora_dropout");
            if (d != null) {
                b.dropout(d);
            }
            i = ConfigJson.optionalInt(json, "tinit");
            if (i != null) {
                b.tinit(i);
            }
            i = ConfigJson.optionalInt(json, "tfinal");
            if (i != null) {
                b.tfinal(i);
            }
            i = ConfigJson.optionalInt(json, "deltaT");
            if (i != null) {
                b.deltaT(i);
            }
            d = ConfigJson.optionalNumber(json, "beta1");
            if (d != null) {
                b.beta1(d);
            }
            d = ConfigJson.optionalNumber(json, "beta2");
            if (d != null) {
                b.beta2(d);
            }
            d = ConfigJson.optionalNumber(json, "orth_reg_weight");
            if (d != null) {
                b.orthRegWeight(d);
            }
            b.totalStep(ConfigJson.requiredInt(json, "total_step"));
            readRankPattern(json, b);
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }

    private static void refuse(Map<String, Object> json) {
        if (ConfigJson.bool(json, "use_dora", false)) {
            throw new AdapterFormatException("adapter_config.json: use_dora=true is not supported with AdaLoRA (Hugging "
                    + "Face PEFT refuses it too)");
        }
        Object loftq = json.get("loftq_config");
        if (loftq != null && !(loftq instanceof Map && ((Map<?, ?>) loftq).isEmpty())) {
            throw new AdapterFormatException("adapter_config.json: loftq_config " + ConfigJson.describe(loftq)
                    + " is not supported with AdaLoRA (Hugging Face PEFT refuses it too); only {} or null is");
        }
        if (ConfigJson.bool(json, "fan_in_fan_out", false)) {
            throw new AdapterFormatException("adapter_config.json: fan_in_fan_out=true is not supported (DL4J dense "
                    + "weights are [nIn, nOut]; peft4j files always store [out, in])");
        }
        if (ConfigJson.bool(json, "lora_bias", false)) {
            throw new AdapterFormatException("adapter_config.json: lora_bias=true is not supported: AdaLoRA's update "
                    + "has no bias of its own");
        }
        if (json.get("layer_replication") != null) {
            throw new AdapterFormatException("adapter_config.json: \"layer_replication\" "
                    + ConfigJson.describe(json.get("layer_replication")) + " is not supported; only null is");
        }
        Object init = json.get("init_lora_weights");
        if (init != null && !(init instanceof Boolean) && !(init instanceof String)) {
            throw new AdapterFormatException("adapter_config.json: \"init_lora_weights\" must be a boolean or a string; "
                    + "got " + ConfigJson.describe(init));
        }
        Object alphaPattern = json.get("alpha_pattern");
        if (alphaPattern instanceof Map && !((Map<?, ?>) alphaPattern).isEmpty()) {
            LOG.warn("adapter_config.json: alpha_pattern {} is ignored: AdaLoRA scales every layer by lora_alpha, as "
                    + "Hugging Face PEFT does", alphaPattern);
        }
    }

    private static void readRankPattern(Map<String, Object> json, AdaLoraConfig.Builder b) {
        Object v = json.get("rank_pattern");
        if (v == null) {
            return;
        }
        if (!(v instanceof Map)) {
            throw new AdapterFormatException("adapter_config.json: \"rank_pattern\" must be null or an object of "
                    + "\"<layer>.lora_E\" to a list of booleans; got " + ConfigJson.describe(v));
        }
        for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
            String key = String.valueOf(e.getKey());
            if (!key.endsWith(AdaLoraConfig.PATTERN_SUFFIX) || key.length() == AdaLoraConfig.PATTERN_SUFFIX.length()) {
                throw new AdapterFormatException("adapter_config.json: \"rank_pattern\" key \"" + key + "\" must be a "
                        + "layer name followed by \"" + AdaLoraConfig.PATTERN_SUFFIX + "\"");
            }
            if (!(e.getValue() instanceof List) || ((List<?>) e.getValue()).stream().anyMatch(x -> !(x instanceof Boolean))) {
                throw new AdapterFormatException("adapter_config.json: \"rank_pattern\" value of \"" + key + "\" must be a "
                        + "list of booleans; got " + ConfigJson.describe(e.getValue()));
            }
            @SuppressWarnings("unchecked")
            List<Boolean> flags = (List<Boolean>) e.getValue();
            b.rankPattern(key.substring(0, key.length() - AdaLoraConfig.PATTERN_SUFFIX.length()), flags);
        }
    }
}
