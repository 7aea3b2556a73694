package org.peft4j.core.prefix;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;

/**
 * Reads {@link PrefixConfig} from a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "PREFIX_TUNING"}); registered with {@link java.util.ServiceLoader}.
 * {@code num_virtual_tokens} is required; {@code token_dim}, {@code num_layers} and
 * {@code num_attention_heads} are checked against the base model when the adapter is applied.
 *
 * <p>The reparameterisation MLP is rebuilt only when the file holds its weights (peft4j's
 * {@code prefix_encoder_saved}); a file with {@code prefix_projection=true} but only
 * {@code prompt_embeddings} (written by PEFT, or by peft4j after folding) loads as plain prefixes
 * holding the MLP's output, as PEFT loads it for inference.
 *
 * <p>Thread-safety: stateless.
 */
public final class PrefixConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return PrefixConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        try {
            PrefixConfig.Builder b = PrefixConfig.builder()
                    .targeting(Targeting.fromJson(json, Targeting.Scope.MODULES_TO_SAVE))
                    .numVirtualTokens(ConfigJson.requiredInt(json, "num_virtual_tokens"));
            Integer submodules = ConfigJson.optionalInt(json, "num_transformer_submodules");
            if (submodules != null && submodules != 1) {
                throw new AdapterFormatException("adapter_config.json: num_transformer_submodules=" + submodules
                        + " is not supported; peft4j prefixes a decoder (1)");
            }
            boolean projection = ConfigJson.bool(json, "prefix_projection", false);
            boolean mlpSaved = ConfigJson.bool(ConfigJson.extension(json), "prefix_encoder_saved", false);
            if (projection && mlpSaved) {
                Integer e = ConfigJson.optionalInt(json, "encoder_hidden_size");
                if (e == null) {
                    throw new AdapterFormatException("adapter_config.json: \"encoder_hidden_size\" must be an integer "
                            + "when the prefix encoder's weights are saved; got null");
                }
                b.encoderHiddenSize(e);
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }
}
