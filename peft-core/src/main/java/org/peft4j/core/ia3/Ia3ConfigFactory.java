package org.peft4j.core.ia3;

import java.util.List;
import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.TargetModules;

/**
 * Reads {@link Ia3Config} from the keys of a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "IA3"}); registered with {@link java.util.ServiceLoader}. Keys must have
 * their JSON types; {@code fan_in_fan_out=true} is refused.
 *
 * <p>Thread-safety: stateless.
 */
public final class Ia3ConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return "IA3";
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        try {
            Ia3Config.Builder b = Ia3Config.builder().targetModules(targets(json.get("target_modules"), "target_modules"));
            Object ff = json.get("feedforward_modules");
            if (ff != null) {
                b.feedforwardModules(targets(ff, "feedforward_modules"));
            }
            Object save = json.get("modules_to_save");
            if (save != null) {
                b.modulesToSave(strings(save, "modules_to_save"));
            }
            if (Boolean.TRUE.equals(json.get("fan_in_fan_out"))) {
                throw new AdapterFormatException("adapter_config.json: fan_in_fan_out=true is not supported");
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }

    private static TargetModules targets(Object v, String key) {
        if (v instanceof String) {
            return "all-linear".equals(v) ? TargetModules.ALL_LINEAR : TargetModules.regex((String) v);
        }
        if (v instanceof List) {
            return TargetModules.names(strings(v, key));
        }
        throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a list of layer names or a "
                + "string; got " + (v == null ? "null" : v + " (" + v.getClass().getSimpleName() + ")"));
    }

    private static String[] strings(Object v, String key) {
        if (!(v instanceof List)) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be a list of strings; got " + v);
        }
        List<?> l = (List<?>) v;
        String[] out = new String[l.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(l.get(i) instanceof String)) {
                throw new AdapterFormatException("adapter_config.json: \"" + key + "\" element " + i + " is not a string");
            }
            out[i] = (String) l.get(i);
        }
        return out;
    }
}
