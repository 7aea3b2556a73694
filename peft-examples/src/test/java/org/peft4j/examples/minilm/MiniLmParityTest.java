package org.peft4j.examples.minilm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.onnx.BertOnnxImport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The imported all-MiniLM-L6-v2 against ONNX Runtime on the same file: 60 varied sentences (short,
 * long, punctuation, numbers, code, several languages and scripts), tokenized with the model's
 * tokenizer.json, run in padded batches of 15 with an attention mask; ONNX Runtime's
 * {@code last_hidden_state} is mean-pooled over the mask here and compared with our {@code pool}.
 */
class MiniLmParityTest {
    private static final Logger LOG = LoggerFactory.getLogger(MiniLmParityTest.class);

    static final List<String> SENTENCES = List.of(
            "Hello world",
            "Hi!",
            "a",
            "?",
            "The quick brown fox jumps over the lazy dog.",
            "I love machine learning, but debugging gradients at 3 a.m. is less fun.",
            "Call me at +1 (555) 010-9999 before 17:45 on 2024-03-15.",
            "Pi is approximately 3.14159265358979 and e is about 2.71828.",
            "WIN A FREE iPhone!!! Click http://example.com/claim?id=12345 NOW!!!",
            "Your package #A-77821 has shipped; expected delivery: Tuesday.",
            "Can you pick up milk, eggs, and bread on the way home?",
            "The meeting has been moved to room 4B — please update your calendars.",
            "Das Wetter ist heute sehr schön, und wir gehen spazieren.",
            "La reunión se ha pospuesto hasta el próximo lunes por la mañana.",
            "Je pense, donc je suis.",
            "Il gatto dorme sul divano tutto il giorno.",
            "東京は日本の首都です。",
            "我喜欢在周末读书和喝茶。",
            "Москва — столица России.",
            "Η γλώσσα είναι ένα σύστημα επικοινωνίας.",
            "مرحبا بالعالم",
            "שלום עולם",
            "नमस्ते दुनिया, आप कैसे हैं?",
            "안녕하세요, 만나서 반갑습니다.",
            "Emoji test: 😀🎉👍 and a heart ❤️.",
            "C'est l'été! L'eau est chaude; n'est-ce pas?",
            "\"Quoted text\" with 'single quotes' and (parentheses) [brackets] {braces}.",
            "email: someone.name+tag@example.co.uk, password123",
            "for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }",
            "SELECT name, COUNT(*) FROM users WHERE age > 21 GROUP BY name;",
            "ALL CAPS SENTENCE SHOUTING ABOUT NOTHING IN PARTICULAR",
            "   leading and trailing spaces   ",
            "tabs\tand\nnewlines\nin the middle",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
            "The mitochondria is the powerhouse of the cell.",
            "Congratulations! You've been selected for a $1000 Walmart gift card. Reply YES to claim.",
            "Ok lar... Joking wif u oni...",
            "U dun say so early hor... U c already then say...",
            "Nah I don't think he goes to usf, he lives around here though",
            "Even my brother is not like to speak with me. They treat me like aids patent.",
            "Had your mobile 11 months or more? U R entitled to Update to the latest colour mobiles with camera for Free!",
            "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
            "0.001 1e-12 -42 +7 100% 3/4 ½ ∑ √2 ≈ 1.414",
            "Well... I guess; maybe? Or—perhaps not!",
            "naïve café résumé coöperate façade jalapeño",
            "The committee, after lengthy deliberations that stretched well into the night and involved several "
                    + "heated exchanges between members who held sharply different views on the matter, finally "
                    + "agreed to postpone the vote until more data on the environmental impact of the proposed "
                    + "development could be gathered, analysed by independent experts, and presented in a public "
                    + "hearing open to all residents of the affected districts.",
            "In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
                    + "darkness was upon the face of the deep.",
            "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer the slings and "
                    + "arrows of outrageous fortune, or to take arms against a sea of troubles.",
            "Transformers use self-attention to weigh the importance of each token relative to every other token "
                    + "in the sequence, which allows them to model long-range dependencies efficiently on parallel "
                    + "hardware.",
            "DL4J ComputationGraph with LoRA adapters on the query and value projections.",
            "short",
            "two words",
            "What time is it?",
            "It's 5 o'clock somewhere.",
            "#hashtag @mention $TICKER &amp; <b>html</b>",
            "Zażółć gęślą jaźń.",
            "Árvíztűrő tükörfúrógép.",
            "Ängstliche Ärzte öffnen übergroße Türen.",
            "Sveiki, kaip sekasi?",
            "The end.");

    static ComputationGraph graph;
    static HuggingFaceTokenizer tokenizer;
    static OrtEnvironment env;
    static OrtSession session;

    @BeforeAll
    static void load(@TempDir Path dir) throws Exception {
        Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        MiniLm mini = new MiniLm(dir);
        tokenizer = HuggingFaceTokenizer.newInstance(mini.tokenizerFile());
        long t0 = System.nanoTime();
        try (InputStream in = MiniLm.class.getClassLoader().getResourceAsStream(MiniLm.MODEL_RESOURCE)) {
            graph = BertOnnxImport.load(in, UnaryOperator.identity());
        }
        LOG.info("ONNX import: {} ms, {} parameters", (System.nanoTime() - t0) / 1_000_000, graph.numParams());
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions opts = new OrtSession.SessionOptions();
        opts.setIntraOpNumThreads(1);
        try (InputStream in = MiniLm.class.getClassLoader().getResourceAsStream(MiniLm.MODEL_RESOURCE)) {
            session = env.createSession(in.readAllBytes(), opts);
        }
    }

    /** Token ids and mask {@code [b, T]}, padded with 0 to the longest sentence of the batch. */
    static long[][][] tokenize(HuggingFaceTokenizer tok, List<String> batch) {
        List<Encoding> enc = new ArrayList<>();
        int t = 0;
        for (String s : batch) {
            Encoding e = tok.encode(s);
            enc.add(e);
            t = Math.max(t, e.getIds().length);
        }
        long[][] ids = new long[batch.size()][t];
        long[][] mask = new long[batch.size()][t];
        for (int i = 0; i < batch.size(); i++) {
            long[] e = enc.get(i).getIds();
            long[] m = enc.get(i).getAttentionMask();
            System.arraycopy(e, 0, ids[i], 0, e.length);
            System.arraycopy(m, 0, mask[i], 0, m.length);
        }
        return new long[][][] {ids, mask};
    }

    /** ONNX Runtime's last_hidden_state mean-pooled over the mask, {@code [b][d]}. */
    static float[][] onnxRuntimePooled(long[][] ids, long[][] mask) throws Exception {
        long[][] types = new long[ids.length][ids[0].length];
        try (OnnxTensor a = OnnxTensor.createTensor(env, ids);
             OnnxTensor b = OnnxTensor.createTensor(env, mask);
             OnnxTensor c = OnnxTensor.createTensor(env, types);
             OrtSession.Result r = session.run(Map.of("input_ids", a, "attention_mask", b, "token_type_ids", c))) {
            float[][][] h = (float[][][]) r.get("last_hidden_state").orElseThrow().getValue();
            float[][] pooled = new float[ids.length][h[0][0].length];
            for (int i = 0; i < ids.length; i++) {
                double n = 0;
                double[] sum = new double[pooled[i].length];
                for (int t = 0; t < ids[i].length; t++) {
                    if (mask[i][t] != 0) {
                        n++;
                        for (int k = 0; k < sum.length; k++) {
                            sum[k] += h[i][t][k];
                        }
                    }
                }
                for (int k = 0; k < sum.length; k++) {
                    pooled[i][k] = (float) (sum[k] / n);
                }
            }
            return pooled;
        }
    }

    static INDArray ourPooled(ComputationGraph g, long[][] ids, long[][] mask) {
        INDArray x = Nd4j.createFromArray(ids).castTo(DataType.FLOAT);
        INDArray m = Nd4j.createFromArray(mask).castTo(DataType.FLOAT);
        return g.output(false, new INDArray[] {x}, new INDArray[] {m})[0];
    }

    @Test
    void pooledOutputMatchesOnnxRuntimeOnSixtySentences() throws Exception {
        assertTrue(SENTENCES.size() >= 50);
        double maxDiff = 0;
        double maxNorm = 0;
        int maxLen = 0;
        long oursNanos = 0;
        for (int from = 0; from < SENTENCES.size(); from += 15) {
            List<String> batch = SENTENCES.subList(from, Math.min(SENTENCES.size(), from + 15));
            long[][][] tm = tokenize(tokenizer, batch);
            maxLen = Math.max(maxLen, tm[0][0].length);
            float[][] expected = onnxRuntimePooled(tm[0], tm[1]);
            long t0 = System.nanoTime();
            INDArray actual = ourPooled(graph, tm[0], tm[1]);
            oursNanos += System.nanoTime() - t0;
            assertEquals(batch.size(), actual.size(0));
            for (int i = 0; i < batch.size(); i++) {
                for (int k = 0; k < expected[i].length; k++) {
                    maxDiff = Math.max(maxDiff, Math.abs(expected[i][k] - actual.getDouble(i, k)));
                    maxNorm = Math.max(maxNorm, Math.abs(expected[i][k]));
                }
            }
        }
        LOG.info("MiniLM parity over {} sentences (longest batch {} tokens): max |ours - ONNX Runtime| = {} "
                + "(largest |value| {}); our forward {} ms", SENTENCES.size(), maxLen, maxDiff, maxNorm,
                oursNanos / 1_000_000);
        assertTrue(maxDiff <= 1e-4, "max abs diff " + maxDiff);
    }

    @Test
    void aSentenceAloneAndPaddedInABatchGiveTheSameEmbedding() {
        long[][][] alone = tokenize(tokenizer, List.of("Hello world"));
        long[][][] batch = tokenize(tokenizer, List.of("Hello world", SENTENCES.get(45)));
        INDArray a = ourPooled(graph, alone[0], alone[1]);
        INDArray b = ourPooled(graph, batch[0], batch[1]);
        assertTrue(batch[0][0].length > alone[0][0].length + 50);
        double diff = a.getRow(0).sub(b.getRow(0)).amaxNumber().doubleValue();
        assertTrue(diff <= 1e-5, "padding changed the embedding by " + diff);
    }
}
