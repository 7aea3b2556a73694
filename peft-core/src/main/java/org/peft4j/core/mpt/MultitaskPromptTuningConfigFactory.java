package org.peft4j.core.mpt;

import java.util.List;
import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftConfigFactory;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.ConfigJson;

/**
 * Reads {@link MultitaskPromptTuningConfig} from a Hugging Face PEFT {@code adapter_config.json}
 * ({@code peft_type} {@code "MULTITASK_PROMPT_TUNING"}); registered with
 * {@link java.util.ServiceLoader}. {@code num_virtual_tokens} is required, {@code num_tasks} and
 * {@code num_ranks} default to 1 (PEFT's defaults); {@code token_dim} is checked against the base
 * model when the adapter is applied. The init is only a starting value that the saved tensors
 * replace, so a source init ({@code AVERAGE_SOURCE_TASKS}, {@code EXACT_SOURCE_TASK},
 * {@code ONLY_SOURCE_SHARED}) is read as {@code RANDOM}: loading an adapter needs no source file
 * where it is loaded, and {@code TEXT} without peft4j's token ids likewise.
 *
 * <p>Thread-safety: stateless.
 */
public final class MultitaskPromptTuningConfigFactory implements PeftConfigFactory {

    @Override
    public String peftType() {
        return MultitaskPromptTuningConfig.PEFT_TYPE;
    }

    @Override
    public PeftConfig fromAdapterConfig(Map<String, Object> json) {
        try {
            MultitaskPromptTuningConfig.Builder b = MultitaskPromptTuningConfig.builder()
                    .targeting(Targeting.fromJson(json, Targeting.Scope.MODULES_TO_SAVE))
                    .numVirtualTokens(ConfigJson.requiredInt(json, "num_virtual_tokens"));
            Integer tasks = ConfigJson.optionalInt(json, "num_tasks");
            if (tasks != null) {
                b.numTasks(tasks);
            }
            Integer ranks = ConfigJson.optionalInt(json, "num_ranks");
            if (ranks != null) {
                b.numRanks(ranks);
            }
            Integer submodules = ConfigJson.optionalInt(json, "num_transformer_submodules");
            if (submodules != null && submodules != 1) {
                throw new AdapterFormatException("adapter_config.json: num_transformer_submodules=" + submodules
                        + " is not supported; peft4j prompts a decoder (1)");
            }
            String init = ConfigJson.optionalString(json, "prompt_tuning_init");
            if (init != null && java.util.Arrays.stream(MultitaskPromptInit.values()).noneMatch(i -> i.name().equals(init))) {
                throw new AdapterFormatException("adapter_config.json: \"prompt_tuning_init\" must be one of "
                        + java.util.Arrays.toString(MultitaskPromptInit.values()) + "; got \"" + init + "\"");
            }
            Map<String, Object> ext = ConfigJson.extension(json);
            Object ids = ext.get("init_token_ids");
            if ("TEXT".equals(init) && ids != null) {
                if (!(ids instanceof List<?> l)) {
                    throw new AdapterFormatException("adapter_config.json: \"peft4j.init_token_ids\" must be a list of "
                            + "token ids; got " + ConfigJson.describe(ids));
                }
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
            String input = ConfigJson.optionalString(ext, "task_input");
            if (input != null) {
                b.taskInput(input);
            }
            return b.build();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
    }
}
