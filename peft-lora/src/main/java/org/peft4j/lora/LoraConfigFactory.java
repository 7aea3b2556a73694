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
 * honour ({@code fan_in_fan_out}, {@code layer_replication}) are refused rather than silently
 * dropped.
 *
 * <p>{@code init_lora_weights}: {@code true}, {@code false}, {@code "gaussian"}, {@code "eva"},
 * {@code "orthogonal"} and {@code "mica"} only chose starting values that the file's tensors
 * replace, and load ({@code "gaussian"} is kept for adapters created from the config; the others
 * read as {@code true}). {@code "pissa"} / {@code "pissa_niter_<n>"}, {@code "olora"},
 * {@code "corda"}, {@code "loftq"} and {@code "lora_ga"} rewrote the base weights when PEFT created
 * the adapter, so the file is only right for that rewritten base: they are refused, saying how
 * to convert the adapter.
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
            b.useDora(ConfigJson.bool(json, "use_dora", false));
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
            b.initLoraWeights(init(json.getOrDefault("init_lora_weights", Boolean.TRUE)));
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }

    /**
     * The initialisation an {@code init_lora_weights} value stands for, matched as Hugging Face
     * PEFT matches it (case-insensitively; {@code pissa} and {@code corda} by prefix).
     *
     * @throws AdapterFormatException for an initialisation that rewrote the base weights, or a value
     *     PEFT does not know
     */
    static LoraInit init(Object value) {
        if (value == null || value instanceof Boolean) {
            return LoraInit.KAIMING_UNIFORM;
        }
        if (!(value instanceof String)) {
            throw new AdapterFormatException("adapter_config.json: \"init_lora_weights\" must be a boolean or a string; "
                    + "got " + ConfigJson.describe(value));
        }
        String v = ((String) value).toLowerCase(java.util.Locale.ROOT);
        if (v.equals("gaussian")) {
            return LoraInit.GAUSSIAN;
        }
        if (v.equals("eva") || v.equals("orthogonal") || v.equals("mica")) {
            return LoraInit.KAIMING_UNIFORM;
        }
        String why;
        if (v.startsWith("pissa")) {
            why = "PiSSA took A and B from the top singular vectors of W and subtracted s·B·A from W";
        } else if (v.equals("olora")) {
            why = "OLoRA took A and B from a QR decomposition of W and subtracted s·B·A from W";
        } else if (v.startsWith("corda")) {
            why = "CorDA took A and B from a covariance-weighted SVD of W and subtracted s·B·A from W";
        } else if (v.equals("lora_ga")) {
            why = "LoRA-GA took A and B from an SVD of estimated gradients and subtracted s·B·A from W";
        } else if (v.equals("loftq")) {
            throw new AdapterFormatException("adapter_config.json: init_lora_weights \"" + value + "\" is not supported: "
                    + "LoftQ replaced the base weights W by their quantized values when the adapter was created, and "
                    + "this adapter only reproduces PEFT's outputs on that quantized base, not on the original one. "
                    + "PEFT cannot convert a LoftQ adapter to plain LoRA; merge it into its LoftQ base in PEFT "
                    + "(merge_and_unload()) and use the merged model instead");
        } else {
            throw new AdapterFormatException("adapter_config.json: init_lora_weights \"" + value + "\" is not a value "
                    + "Hugging Face PEFT knows; expected true, false, \"gaussian\", \"eva\", \"orthogonal\", \"mica\" "
                    + "(or one of the base-changing \"pissa\", \"olora\", \"corda\", \"loftq\", \"lora_ga\", which "
                    + "peft4j refuses)");
        }
        throw new AdapterFormatException("adapter_config.json: init_lora_weights \"" + value + "\" is not supported: "
                + why + " when the adapter was created, so this adapter only reproduces PEFT's outputs on that rewritten "
                + "base, not on the original one. Convert it to a plain LoRA in PEFT with save_pretrained(dir, "
                + "path_initial_model_for_weight_conversion=<the adapter saved before training>), which writes "
                + "init_lora_weights: true and twice the rank, and load that");
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
