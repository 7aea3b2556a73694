package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.evaluation.classification.Evaluation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.examples.minilm.MiniLm;
import org.peft4j.lora.LoraConfig;

/**
 * LEARNING TEST (bounded: 120 generated training e-mails, 40 held-out, 24 tokens, 40 steps of
 * batch 8; about 30 s here). The real pretrained all-MiniLM-L6-v2 with a new head, fine-tuned with
 * LoRA (r 8 on q, v, plus the head) on generated spam and ham, must beat its own starting point on
 * held-out e-mails, and the saved adapter reloaded onto a base converted again from ONNX must give
 * exactly the same predictions.
 */
class SpamLearningTest {
    private static final long SEED = 5;

    @BeforeAll
    static void floats() {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
    }

    private static ComputationGraph base(Path cache) throws Exception {
        return new MiniLm(cache).load(b -> b.classes(2).seed(SEED).updater(new Adam(2e-3)));
    }

    private static List<MultiDataSet> batches(EmailEncoder enc, List<Object[]> labelled, int batch) {
        List<MultiDataSet> out = new ArrayList<>();
        for (int from = 0; from < labelled.size(); from += batch) {
            List<Object[]> b = labelled.subList(from, Math.min(labelled.size(), from + batch));
            out.add(enc.batch(b.stream().map(x -> (String) x[0]).toList(), b.stream().map(x -> (Boolean) x[1]).toList()));
        }
        return out;
    }

    @Test
    void loraBeatsTheUntrainedStartAndItsAdapterReloadsExactlyOntoAFreshlyConvertedBase(@TempDir Path dir)
            throws Exception {
        ComputationGraph base = base(dir.resolve("cache1"));
        try (EmailEncoder enc = new EmailEncoder(new MiniLm(dir.resolve("cache1")).tokenizerFile(), 24)) {
            Random rnd = new Random(SEED);
            List<Object[]> train = SyntheticEmails.labelled(60, rnd);
            List<MultiDataSet> test = batches(enc, SyntheticEmails.labelled(20, rnd), 8);
            Evaluation before = SpamExample.evaluate(base, test);

            PeftModel peft = Peft.wrap(base, LoraConfig.builder().rank(8).alpha(16)
                    .targetModulesRegex(SpamExample.ATTENTION_QV).modulesToSave(SpamExample.HEAD).build());
            ComputationGraph g = peft.graph();
            Random pick = new Random(SEED + 1);
            for (int step = 0; step < 40; step++) {
                List<Object[]> b = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    b.add(train.get(pick.nextInt(train.size())));
                }
                g.fit(batches(enc, b, 8).get(0));
            }
            Evaluation after = SpamExample.evaluate(g, test);
            // printed so that the margin shows in the test report (the examples' logging is set to warn)
            System.out.printf(java.util.Locale.ROOT, "SpamLearningTest: held-out spam F1 %.3f -> %.3f, accuracy %.3f -> "
                    + "%.3f%n", before.f1(EmailEncoder.SPAM), after.f1(EmailEncoder.SPAM), before.accuracy(),
                    after.accuracy());
            assertTrue(after.f1(EmailEncoder.SPAM) >= before.f1(EmailEncoder.SPAM) + 0.15,
                    "F1 " + before.f1(EmailEncoder.SPAM) + " -> " + after.f1(EmailEncoder.SPAM));
            assertTrue(after.accuracy() >= 0.9, "accuracy after " + after.accuracy());

            Path adapter = dir.resolve("adapter");
            peft.saveAdapter(adapter);
            ComputationGraph fresh = base(dir.resolve("cache2")); // converted from ONNX again
            ComputationGraph reloaded = Peft.load(fresh, adapter).graph();
            for (MultiDataSet b : test) {
                INDArray p = SpamExample.predict(g, b);
                INDArray q = SpamExample.predict(reloaded, b);
                assertEquals(p, q, "reloaded adapter predicts differently");
            }
        }
    }
}
