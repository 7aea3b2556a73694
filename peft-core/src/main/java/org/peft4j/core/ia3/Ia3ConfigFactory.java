package org.peft4j.core.ia3;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;

/**
 * Reads {@link Ia3Config} from the keys of a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "IA3"}); registered with {@link java.util.ServiceLoader}. The shared
 * keys are read by {@link Targeting#fromJson}; {@code feedforward_modules} takes the same forms as
 * {@code target_modules} (a list or a regex string); {@code fan_in_fan_out=true} is refused.
 *
 * <p>Thread-safety: stateless.
 */
public final class Ia3ConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return Ia3Config.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        Ia3Config.Builder b = Ia3Config.builder().targeting(Targeting.fromJson(json, Targeting.Scope.TARGETS));
        Object ff = json.get("feedforward_modules");
        try {
            if (ff != null) {
                b.feedforwardModules(Targeting.selectionFromJson(ff, "feedforward_modules", false));
            }
            if (ConfigJson.bool(json, "fan_in_fan_out", false)) {
                throw new AdapterFormatException("adapter_config.json: fan_in_fan_out=true is not supported");
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }
}
