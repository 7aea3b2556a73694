package org.peft4j.core.adapter;

import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import org.nd4j.linalg.activations.Activation;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;

/**
 * Reads {@link AdapterConfig} from the keys {@link AdapterConfig#toAdapterConfig()} writes
 * ({@code peft_type} {@code "BOTTLENECK"}, a peft4j extension); registered with
 * {@link java.util.ServiceLoader}. A preset architecture must come with its own insert points, and
 * exactly one of {@code bottleneck_size} and {@code reduction_factor} must be given.
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return AdapterConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        try {
            AdapterConfig.Builder b = AdapterConfig.builder()
                    .targeting(Targeting.fromJson(json, Targeting.Scope.MODULES_TO_SAVE));
            String arch = ConfigJson.optionalString(json, "architecture");
            AdapterConfig.Architecture a;
            try {
                a = AdapterConfig.Architecture.valueOf(arch == null ? "" : arch);
            } catch (IllegalArgumentException e) {
                throw new AdapterFormatException("adapter_config.json: \"architecture\" must be one of "
                        + Arrays.toString(AdapterConfig.Architecture.values()) + "; got " + ConfigJson.describe(arch));
            }
            Object where = json.get("insert_after");
            switch (a) {
                case HOULSBY:
                    b.houlsby();
                    break;
                case PFEIFFER:
                    b.pfeiffer();
                    break;
                default:
                    if (where instanceof String) {
                        b.insertAfterRegex((String) where);
                    } else if (where instanceof java.util.List) {
                        b.insertAfter(ConfigJson.optionalStrings(json, "insert_after"));
                    } else {
                        throw new AdapterFormatException("adapter_config.json: \"insert_after\" must be a list of layer "
                                + "names or a regex string; got " + ConfigJson.describe(where));
                    }
            }
            Integer size = ConfigJson.optionalInt(json, "bottleneck_size");
            Integer factor = ConfigJson.optionalInt(json, "reduction_factor");
            if ((size == null) == (factor == null)) {
                throw new AdapterFormatException("adapter_config.json: give exactly one of \"bottleneck_size\" and "
                        + "\"reduction_factor\"; got " + size + " and " + factor);
            }
            if (size != null) {
                b.bottleneckSize(size);
            } else {
                b.reductionFactor(factor);
            }
            String act = ConfigJson.optionalString(json, "non_linearity");
            if (act != null) {
                try {
                    b.nonlinearity(Activation.valueOf(act.toUpperCase(Locale.ROOT)));
                } catch (IllegalArgumentException e) {
                    throw new AdapterFormatException("adapter_config.json: \"non_linearity\" \"" + act + "\" is not a "
                            + "DL4J activation; known: " + Arrays.stream(Activation.values())
                            .map(x -> x.name().toLowerCase(Locale.ROOT)).toList());
                }
            }
            AdapterConfig c = b.build();
            if (a != AdapterConfig.Architecture.CUSTOM && where != null && !where.equals(c.insertAfter().regex())) {
                throw new AdapterFormatException("adapter_config.json: architecture " + a + " inserts after \""
                        + c.insertAfter().regex() + "\", but \"insert_after\" is " + ConfigJson.describe(where)
                        + "; use architecture CUSTOM for other insert points");
            }
            return c;
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }
}
