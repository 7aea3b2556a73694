package org.peft4j.core.internal;

import java.util.Map;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.spi.ConfigJson;

/**
 * Checks shared by the readers of PEFT's prompt-learning configs (prompt and prefix tuning).
 *
 * <p>Thread-safety: stateless.
 */
public final class PromptLearningKeys {

    private PromptLearningKeys() {
    }

    /**
     * Refuses a prompt for an encoder-decoder ({@code num_transformer_submodules} 2, or null with
     * {@code task_type} {@code SEQ_2_SEQ_LM}, which PEFT reads as 2): its tensor holds a prompt for
     * the encoder and one for the decoder, and peft4j prompts one stack.
     */
    public static void checkOneSubmodule(Map<String, Object> json) {
        Integer submodules = ConfigJson.optionalInt(json, "num_transformer_submodules");
        if (submodules == null && "SEQ_2_SEQ_LM".equals(json.get("task_type"))) {
            throw new AdapterFormatException("\"num_transformer_submodules\" = null with \"task_type\" = \"SEQ_2_SEQ_LM\" "
                    + "is not supported: PEFT reads it as 2, a prompt for the encoder and one for the decoder of an "
                    + "encoder-decoder model, and peft4j prompts one stack (1)");
        }
        if (submodules != null && submodules != 1) {
            throw new AdapterFormatException("\"num_transformer_submodules\" = " + submodules + " is not supported: "
                    + "the file holds a prompt for each of " + submodules + " stacks of an encoder-decoder model, and "
                    + "peft4j prompts one stack (1)");
        }
    }
}
