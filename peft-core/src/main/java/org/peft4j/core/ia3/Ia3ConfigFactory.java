package org.peft4j.core.ia3;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.KeyPolicy;

/**
 * Reads {@link Ia3Config} from the keys of a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "IA3"}); registered with {@link java.util.ServiceLoader}. The shared
 * keys are read by {@link Targeting#fromJson}; {@code feedforward_modules} takes the same forms as
 * {@code target_modules} (a list or a regex string; an empty list, as PEFT writes for none, is none).
 * {@code fan_in_fan_out} only says how the
 * PyTorch base stores its weights (GPT-2's {@code Conv1D}); IA3's vector has the same shape either
 * way, so it is ignored. Every key's treatment: {@link #keyPolicy()}.
 *
 * <p>Thread-safety: stateless.
 */
public final class Ia3ConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return Ia3Config.PEFT_TYPE;
    }

    /** PEFT's IA3Config keys: targets, exclusions, feedforward modules and modules to save honoured, the rest ignored. */
    private static final KeyPolicy POLICY = KeyPolicy.builder()
            .honoured("target_modules").honoured("exclude_modules").honoured("modules_to_save")
            .honoured("feedforward_modules", KeyPolicy.Role.MODULE_SELECTION)
            .ignored("fan_in_fan_out", "init_ia3_weights")
            .build();

    @Override
    public KeyPolicy keyPolicy() {
        return POLICY;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        Ia3Config.Builder b = Ia3Config.builder().targeting(Targeting.fromJson(json, Targeting.Scope.TARGETS));
        Object ff = json.get("feedforward_modules");
        try {
            if (ff != null && !(ff instanceof java.util.List<?> l && l.isEmpty())) {
                b.feedforwardModules(Targeting.selectionFromJson(ff, "feedforward_modules", false));
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException(e.getMessage(), e);
        }
    }
}
