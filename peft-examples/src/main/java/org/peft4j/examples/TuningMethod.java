package org.peft4j.examples;

import java.util.function.Consumer;
import java.util.function.IntFunction;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;

/**
 * One way to adapt the pretrained model, as a row of the comparison table.
 *
 * @param name short name used on the command line and in the table
 * @param description one line for {@code --help} and the README
 * @param config the PEFT configuration for a given LoRA rank and number of training steps; null
 *     for the zero-shot baseline, which does not train
 * @param learningRate Adam learning rate while fine-tuning
 * @param onWrap what the method needs on the wrapped model before training (AdaLoRA attaches its
 *     rank allocator); does nothing for most methods
 */
record TuningMethod(String name, String description, Config config, double learningRate, Consumer<PeftModel> onWrap) {

    /** A method's configuration: most depend on the rank only, AdaLoRA's budget schedule on the steps too. */
    @FunctionalInterface
    interface Config {
        PeftConfig of(int rank, int steps);
    }

    /** A method whose configuration depends on the rank only and that needs nothing after wrapping. */
    TuningMethod(String name, String description, IntFunction<PeftConfig> config, double learningRate) {
        this(name, description, config == null ? null : (rank, steps) -> config.apply(rank), learningRate, p -> { });
    }

    /** Whether this method trains at all (every method but the zero-shot baseline). */
    boolean trains() {
        return config != null;
    }

    /** Wraps {@code base} for this method, ready to train for {@code steps} steps. */
    PeftModel wrap(ComputationGraph base, int rank, int steps) {
        PeftModel peft = Peft.wrap(base, config.of(rank, steps));
        onWrap.accept(peft);
        return peft;
    }
}
