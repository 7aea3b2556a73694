package org.peft4j.lora.loha;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.lora.lycoris.LayerPatterns;

/**
 * Reads {@link LoHaConfig} from the keys of a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "LOHA"}); registered with {@link java.util.ServiceLoader}. The shared
 * keys (targets, exclusions, modules to save) are read by {@link Targeting#fromJson}; an absent
 * LoHa key takes PEFT's default ({@code r} 8, {@code alpha} 8, dropouts 0); {@code rank_pattern}
 * and {@code alpha_pattern} are read by {@link LayerPatterns#fromJson}. Keys we do not use are
 * ignored; keys we use must have the right JSON type and a value the builder accepts.
 *
 * <p>Thread-safety: stateless.
 */
public final class LoHaConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return LoHaConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        LoHaConfig.Builder b = LoHaConfig.builder().targeting(Targeting.fromJson(json, Targeting.Scope.TARGETS));
        try {
            Integer r = ConfigJson.optionalInt(json, "r");
            if (r != null) {
                b.rank(r);
            }
            Double alpha = ConfigJson.optionalNumber(json, "alpha");
            if (alpha != null) {
                b.alpha(alpha);
            }
            Double rankDropout = ConfigJson.optionalNumber(json, "rank_dropout");
            if (rankDropout != null) {
                b.rankDropout(rankDropout);
            }
            Double moduleDropout = ConfigJson.optionalNumber(json, "module_dropout");
            if (moduleDropout != null) {
                b.moduleDropout(moduleDropout);
            }
            b.useEffectiveConv2d(ConfigJson.bool(json, "use_effective_conv2d", false));
            b.initWeights(ConfigJson.bool(json, "init_weights", true));
            b.patterns(LayerPatterns.fromJson(json));
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }

}
