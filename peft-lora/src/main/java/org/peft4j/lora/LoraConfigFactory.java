package org.peft4j.lora;

import java.util.List;
import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.BiasMode;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.TargetModules;

/**
 * Reads {@link LoraConfig} from the keys of a Hugging Face PEFT {@code adapter_config.json};
 * registered with {@link java.util.ServiceLoader}. Keys we do not use (PEFT writes many) are
 * ignored; keys we use must have the right JSON type, and options we cannot honour
 * ({@code use_dora}, {@code fan_in_fan_out}, a non-empty {@code rank_pattern} or
 * {@code alpha_pattern}, {@code layers_to_transform}, {@code layer_replication}) are refused rather
 * than silently dropped.
 *
 * <p>Thread-safety: stateless.
 */
public final class LoraConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return "LORA";
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        LoraConfig.Builder b = LoraConfig.builder();
        try {
            b.rank(intValue(json, "r"));
            b.alpha(number(json, "lora_alpha"));
            if (json.get("lora_dropout") != null) {
                b.dropout(number(json, "lora_dropout"));
            }
            Object t = json.get("target_modules");
            if (t instanceof String) {
                b.targetModules("all-linear".equals(t) ? TargetModules.ALL_LINEAR : TargetModules.regex((String) t));
            } else if (t instanceof List) {
                b.targetModules(strings(t, "target_modules"));
            } else {
                throw new AdapterFormatException("adapter_config.json: \"target_modules\" must be a list of layer names "
                        + "or a string; got " + describe(t));
            }
            Object bias = json.getOrDefault("bias", "none");
            if (!(bias instanceof String)) {
                throw new AdapterFormatException("adapter_config.json: \"bias\" must be a string; got " + describe(bias));
            }
            b.bias(BiasMode.fromJsonName((String) bias));
            Object save = json.get("modules_to_save");
            if (save != null) {
                b.modulesToSave(strings(save, "modules_to_save"));
            }
            b.useRsLora(bool(json, "use_rslora", false));
            if (bool(json, "use_dora", false)) {
                throw new AdapterFormatException("adapter_config.json: use_dora=true is not supported by this version");
            }
            if (bool(json, "fan_in_fan_out", false)) {
                throw new AdapterFormatException("adapter_config.json: fan_in_fan_out=true is not supported (DL4J "
                        + "dense weights are [nIn, nOut]; peft4j files always store [out, in])");
            }
            for (String key : List.of("rank_pattern", "alpha_pattern")) {
                Object pattern = json.get(key);
                if (pattern != null && !(pattern instanceof Map<?, ?> m && m.isEmpty())) {
                    throw new AdapterFormatException("adapter_config.json: \"" + key + "\" " + describe(pattern)
                            + " is not supported: per-module ranks and alphas are not implemented, and dropping them "
                            + "would change the adapter's output");
                }
            }
            for (String key : List.of("layers_to_transform", "layer_replication")) {
                if (json.get(key) != null) {
                    throw new AdapterFormatException("adapter_config.json: \"" + key + "\" " + describe(json.get(key))
                            + " is not supported; only null is");
                }
            }
            Object init = json.getOrDefault("init_lora_weights", Boolean.TRUE);
            b.initLoraWeights("gaussian".equals(init) ? LoraInit.GAUSSIAN : LoraInit.KAIMING_UNIFORM);
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }

    private static String describe(Object o) {
        return o == null ? "null" : o + " (" + o.getClass().getSimpleName() + ")";
    }

    private static double number(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (!(v instanceof Number)) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a number; got " + describe(v));
        }
        return ((Number) v).doubleValue();
    }

    private static int intValue(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (!(v instanceof Integer || v instanceof Long) || ((Number) v).longValue() != ((Number) v).intValue()) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be an integer; got " + describe(v));
        }
        return ((Number) v).intValue();
    }

    private static boolean bool(Map<String, Object> json, String key, boolean dflt) {
        Object v = json.get(key);
        if (v == null) {
            return dflt;
        }
        if (!(v instanceof Boolean)) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be true or false; got " + describe(v));
        }
        return (Boolean) v;
    }

    private static String[] strings(Object v, String key) {
        if (!(v instanceof List)) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a list of strings; got " + describe(v));
        }
        List<?> l = (List<?>) v;
        String[] out = new String[l.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(l.get(i) instanceof String)) {
                throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a list of strings; element "
                        + i + " is " + describe(l.get(i)));
            }
            out[i] = (String) l.get(i);
        }
        return out;
    }
}
