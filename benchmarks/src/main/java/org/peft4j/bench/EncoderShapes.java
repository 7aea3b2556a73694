package org.peft4j.bench;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.IUpdater;
import org.peft4j.core.FineTuningConfig;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;
import org.peft4j.quant.QuantSpec;

/**
 * The MiniLM-sized encoder of the PyTorch comparison ({@code benchmarks/peer/torch_encoder.py}): 6
 * post-norm blocks, d 384, 12 heads, FFN 1536, vocabulary 30522, 512 positions, masked mean pooling
 * and a 2-class head, float32; batches of 64 tokens whose second half of rows is padded after token
 * 40, as in the peer. Weights are random: speed does not depend on them.
 */
final class EncoderShapes {
    static final int VOCAB = 30522;
    static final int LAYERS = 6;
    static final int D = 384;
    static final int HEADS = 12;
    static final int MAX_LENGTH = 512;
    static final int TOKENS = 64;
    static final int CLASSES = 2;
    /** Length of the padded rows (the peer's {@code am[b/2:, 40:] = 0}). */
    static final int PADDED_LENGTH = 40;

    /** LoRA r 8, alpha 16 on every block's query and value projections, the head trained in full. */
    static final LoraConfig LORA_QV = LoraConfig.builder().rank(8).alpha(16)
            .targetModulesRegex("block\\d+\\.attn\\.(q|v)").modulesToSave(Transformers.CLASSIFIER).build();

    private EncoderShapes() {
    }

    static ComputationGraph encoder(IUpdater updater) {
        return Transformers.encoder().vocabSize(VOCAB).maxLength(MAX_LENGTH).dModel(D).heads(HEADS).layers(LAYERS)
                .mlpRatio(4).classes(CLASSES).updater(updater).seed(1).build();
    }

    /**
     * The trainable graph of a mode: {@code full} (every weight), {@code head} (only the classifier),
     * {@code lora-qv} ({@link #LORA_QV}), {@code qlora-qv} (the same adapters over a base whose dense
     * layers are all NF4 with double quantization, as the QLoRA paper quantizes the whole base).
     */
    static ComputationGraph trainable(String mode, IUpdater updater) {
        ComputationGraph base = encoder(updater);
        PeftConfig cfg = switch (mode) {
            case "full" -> FineTuningConfig.full();
            case "head" -> FineTuningConfig.transferLearning(Transformers.CLASSIFIER);
            case "lora-qv" -> LORA_QV;
            case "qlora-qv" -> QLoraConfig.of(LORA_QV, QuantSpec.nf4().withDoubleQuant(true)).quantizeFrozenLayers(true);
            default -> throw new IllegalArgumentException("unknown mode " + mode
                    + "; expected full, head, lora-qv or qlora-qv");
        };
        return Peft.wrap(base, cfg).graph();
    }

    /** Token ids {@code [batch, 64]} (as floats), seeded. */
    static INDArray tokens(int batch) {
        Nd4j.getRandom().setSeed(7);
        INDArray u = Nd4j.rand(DataType.FLOAT, batch, TOKENS);
        return org.nd4j.linalg.ops.transforms.Transforms.floor(u.muli(VOCAB - 1), false);
    }

    /** Padding mask {@code [batch, 64]}: the rows of the second half keep their first 40 tokens only. */
    static INDArray mask(int batch) {
        INDArray m = Nd4j.ones(DataType.FLOAT, batch, TOKENS);
        for (int b = batch / 2; b < batch; b++) {
            for (int t = PADDED_LENGTH; t < TOKENS; t++) {
                m.putScalar(b, t, 0.0);
            }
        }
        return m;
    }

    /** One training batch: tokens, mask and one-hot labels of alternating classes. */
    static MultiDataSet batch(int batch) {
        INDArray y = Nd4j.zeros(DataType.FLOAT, batch, CLASSES);
        for (int i = 0; i < batch; i++) {
            y.putScalar(i, i % CLASSES, 1.0);
        }
        return new MultiDataSet(new INDArray[] {tokens(batch)}, new INDArray[] {y}, new INDArray[] {mask(batch)}, null);
    }
}
