package org.peft4j.examples;

import java.util.function.IntFunction;
import org.peft4j.core.PeftConfig;

/**
 * One way to adapt the pretrained model, as a row of the comparison table.
 *
 * @param name short name used on the command line and in the table
 * @param description one line for {@code --help} and the README
 * @param config the PEFT configuration for a given LoRA rank; null for the zero-shot baseline,
 *     which does not train
 * @param learningRate Adam learning rate while fine-tuning
 */
record TuningMethod(String name, String description, IntFunction<PeftConfig> config, double learningRate) {

    /** Whether this method trains at all (every method but the zero-shot baseline). */
    boolean trains() {
        return config != null;
    }
}
