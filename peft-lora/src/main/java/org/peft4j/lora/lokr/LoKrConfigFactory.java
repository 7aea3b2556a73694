package org.peft4j.lora.lokr;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.lora.lycoris.LayerPatterns;

/**
 * Reads {@link LoKrConfig} from the keys of a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "LOKR"}); registered with {@link java.util.ServiceLoader}. The shared
 * keys (targets, exclusions, modules to save) are read by {@link Targeting#fromJson}; an absent
 * LoKr key takes PEFT's default ({@code r} 8, {@code alpha} 8, dropouts 0,
 * {@code decompose_factor} −1). {@code decompose_factor} is taken as PEFT takes it, whatever the
 * integer; {@code rank_pattern} and {@code alpha_pattern} are read by {@link LayerPatterns#fromJson}.
 * Keys we do not use are ignored; keys we use must have the right JSON type and a value the builder
 * accepts.
 *
 * <p>Thread-safety: stateless.
 */
public final class LoKrConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return LoKrConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        LoKrConfig.Builder b = LoKrConfig.builder().targeting(Targeting.fromJson(json, Targeting.Scope.TARGETS));
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
            b.rankDropoutScale(ConfigJson.bool(json, "rank_dropout_scale", false));
            b.useEffectiveConv2d(ConfigJson.bool(json, "use_effective_conv2d", false));
            b.decomposeBoth(ConfigJson.bool(json, "decompose_both", false));
            Integer factor = ConfigJson.optionalInt(json, "decompose_factor");
            if (factor != null) {
                b.decomposeFactorAsPeftReadsIt(factor);
            }
            Object init = json.get("init_weights");
            if (init != null) {
                b.init(LoKrInit.fromJson(init));
            }
            b.patterns(LayerPatterns.fromJson(json));
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }
}
