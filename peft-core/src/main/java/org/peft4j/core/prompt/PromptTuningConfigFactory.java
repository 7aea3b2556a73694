package org.peft4j.core.prompt;

import java.util.List;
import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;

/**
 * Reads {@link PromptTuningConfig} from a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "PROMPT_TUNING"}); registered with {@link java.util.ServiceLoader}.
 * {@code num_virtual_tokens} is required; {@code token_dim} is checked against the base model when
 * the adapter is applied. peft4j's extension keys {@code embedding_layer} and {@code output_layer}
 * default to those of {@code Transformers.decoder()}. The init is only a starting value, so an
 * init peft4j cannot reproduce ({@code "TEXT"} with only {@code prompt_tuning_init_text}, or
 * {@code "SAMPLE_VOCAB"}) is read as {@code RANDOM}: the saved prompt replaces it anyway.
 *
 * <p>Thread-safety: stateless.
 */
public final class PromptTuningConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return PromptTuningConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        try {
            PromptTuningConfig.Builder b = PromptTuningConfig.builder()
                    .targeting(Targeting.fromJson(json, Targeting.Scope.MODULES_TO_SAVE))
                    .numVirtualTokens(ConfigJson.requiredInt(json, "num_virtual_tokens"));
            if (ConfigJson.optionalInt(json, "num_transformer_submodules") != null
                    && ConfigJson.optionalInt(json, "num_transformer_submodules") != 1) {
                throw new AdapterFormatException("adapter_config.json: num_transformer_submodules="
                        + json.get("num_transformer_submodules") + " is not supported; peft4j prompts a decoder (1)");
            }
            Map<String, Object> ext = ConfigJson.extension(json);
            String init = ConfigJson.optionalString(json, "prompt_tuning_init");
            if (init != null && !List.of("RANDOM", "TEXT", "SAMPLE_VOCAB").contains(init)) {
                throw new AdapterFormatException("adapter_config.json: \"prompt_tuning_init\" must be \"RANDOM\", "
                        + "\"TEXT\" or \"SAMPLE_VOCAB\"; got \"" + init + "\"");
            }
            Object ids = ext.get("init_token_ids");
            if ("TEXT".equals(init) && ids != null) {
                if (!(ids instanceof List)) {
                    throw new AdapterFormatException("adapter_config.json: \"peft4j.init_token_ids\" must be a list of "
                            + "token ids; got " + ConfigJson.describe(ids));
                }
                List<?> l = (List<?>) ids;
                int[] tokens = new int[l.size()];
                for (int i = 0; i < tokens.length; i++) {
                    if (!(l.get(i) instanceof Integer)) {
                        throw new AdapterFormatException("adapter_config.json: \"peft4j.init_token_ids\" element " + i
                                + " is " + ConfigJson.describe(l.get(i)) + ", not a token id");
                    }
                    tokens[i] = (Integer) l.get(i);
                }
                b.initFromTokens(tokens);
            }
            String emb = ConfigJson.optionalString(ext, "embedding_layer");
            if (emb != null) {
                b.embeddingLayer(emb);
            }
            String out = ConfigJson.optionalString(ext, "output_layer");
            if (out != null) {
                b.outputLayer(out);
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }
}
