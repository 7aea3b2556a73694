package org.peft4j.examples;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.blocks.Transformers;


/**
 * Builds the character-level language model the examples fine-tune: peft4j's GPT-style decoder
 * ({@link Transformers#decoder()}), input {@code tokens} {@code [batch, time]} ids, output
 * {@code head}, softmax over the vocabulary per position {@code [batch, vocab, time]}, trained
 * with sparse labels {@code [batch, 1, time]} (the id of the following character).
 *
 * <p>Thread-safety: stateless.
 */
final class CharModels {

    /** Layers LoRA targets in the "attention" variant: query and value projections of every block. */
    static final String ATTENTION_QV = "block\\d+\\.attn\\.(q|v)";
    /** Layers IA3 scales: keys, values and the MLP's down projection (whose input it scales). */
    static final String IA3_TARGETS = "block\\d+\\.attn\\.(k|v)|block\\d+\\.mlp\\.down";
    /** IA3's feed-forward targets. */
    static final String IA3_FEEDFORWARD = "block\\d+\\.mlp\\.down";
    /** Room left in the position table for virtual tokens (prompt tuning). */
    static final int VIRTUAL_TOKENS = 8;

    private CharModels() {
    }

    /** The decoder for {@code s}, initialized. */
    static ComputationGraph build(ModelSettings s) {
        return Transformers.decoder()
                .vocabSize(s.vocabSize())
                .maxLength(s.seqLen() + VIRTUAL_TOKENS)
                .dModel(s.dModel())
                .heads(s.heads())
                .layers(s.layers())
                .mlpRatio(s.mlpRatio())
                .seed(s.seed())
                .updater(new Adam(s.learningRate()))
                .dataType(DataType.FLOAT)
                .build();
    }
}
