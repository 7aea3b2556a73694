package org.peft4j.examples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.DpoConfig;
import org.peft4j.core.rlhf.DpoMetrics;
import org.peft4j.core.rlhf.DpoTrainer;
import org.peft4j.core.rlhf.PpoConfig;
import org.peft4j.core.rlhf.PpoMetrics;
import org.peft4j.core.rlhf.PpoTrainer;
import org.peft4j.core.rlhf.PreferencePair;
import org.peft4j.core.rlhf.RewardConfig;
import org.peft4j.core.rlhf.RewardMetrics;
import org.peft4j.core.rlhf.RewardModel;
import org.peft4j.core.rlhf.RewardTrainer;
import org.peft4j.core.rlhf.SamplingConfig;
import org.peft4j.core.rlhf.ScoreHead;
import org.peft4j.core.rlhf.Sequences;
import org.peft4j.lora.LoraConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Learning from preferences on real text, with adapters: the character decoder of
 * {@link FineTuneExample} (pretrained on five Europarl languages, same cache) meets a language it
 * never saw. Each preference pair is the start of a held-out-language Europarl line (the prompt),
 * the line's real continuation (chosen) and a continuation the base model samples (rejected): the
 * standard "human-written over model-written" construction. Then
 * <ol>
 *   <li>a reward model: LoRA on the attention queries and values plus a scalar head
 *       ({@link ScoreHead}) trained with the Bradley–Terry loss, held by adapter {@code reward};</li>
 *   <li>DPO: a LoRA adapter of the plain decoder trained on the pairs directly, the adapter-disabled
 *       model as reference;</li>
 *   <li>PPO: the default adapter of the reward model's own {@link PeftModel} (one copy of the base
 *       for policy, reference, value head and reward model) trained against the reward adapter with
 *       a KL penalty to the reference.</li>
 * </ol>
 * Each method is judged against the base on held-out prompts by scorers it did not train on: the
 * win rate of its continuations under a judge language model (LoRA fine-tuned on the train lines,
 * used by no method: likelier per character wins) and under the examples' function-word language
 * guesser ({@link LanguageGuess}: target-language words minus the best other language), and its
 * bits per character on the real held-out continuations; plus the KL to the reference, the reward
 * model's score and the time per step. Writes {@code results.md}, {@code ppo-reward-kl.png},
 * {@code samples.md} and the adapters (PEFT layout) under {@code --out}.
 *
 * <p>Run: {@code java -cp peft-examples/target/peft-examples.jar org.peft4j.examples.PreferenceExample}.
 *
 * <p>Thread-safety: one instance runs one experiment on the calling thread.
 */
@Command(name = "preference", mixinStandardHelpOptions = true, sortOptions = false, usageHelpAutoWidth = true,
        description = {"Reward model, DPO and PPO on adapters: preferences of real held-out-language text over the base "
                + "model's own continuations.", "Writes results.md, ppo-reward-kl.png, samples.md and the adapters "
                + "under --out."})
public final class PreferenceExample implements Callable<Integer> {

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--target", paramLabel = "LANG", description = "held-out language (default: ${DEFAULT-VALUE})")
    String target = "pt";

    @Option(names = "--prompt-chars", paramLabel = "N", description = "characters of a line's start used as prompt "
            + "(default: ${DEFAULT-VALUE})")
    int promptChars = 24;

    @Option(names = "--response-chars", paramLabel = "N", description = "characters of a continuation, real or "
            + "sampled (default: ${DEFAULT-VALUE})")
    int responseChars = 48;

    @Option(names = "--rank", paramLabel = "R", description = "LoRA rank on q and v, alpha = 2r (default: ${DEFAULT-VALUE})")
    int rank = 8;

    @Option(names = "--reward-steps", paramLabel = "N", description = "reward-model steps (default: ${DEFAULT-VALUE})")
    int rewardSteps = 200;

    @Option(names = "--dpo-steps", paramLabel = "N", description = "DPO steps (default: ${DEFAULT-VALUE})")
    int dpoSteps = 200;

    @Option(names = "--ppo-iterations", paramLabel = "N", description = "PPO iterations (default: ${DEFAULT-VALUE})")
    int ppoIterations = 80;

    @Option(names = "--judge-steps", paramLabel = "N", description = "steps of the judge language model, LoRA "
            + "fine-tuned on the train lines (default: ${DEFAULT-VALUE})")
    int judgeSteps = 150;

    @Option(names = "--pairs-per-step", paramLabel = "N", description = "preference pairs per reward-model and DPO "
            + "step (default: ${DEFAULT-VALUE})")
    int pairsPerStep = 16;

    @Option(names = "--ppo-prompts", paramLabel = "N", description = "rollouts per PPO iteration (default: ${DEFAULT-VALUE})")
    int ppoPrompts = 32;

    @Option(names = "--dpo-beta", paramLabel = "B", description = "DPO's beta (default: ${DEFAULT-VALUE})")
    double dpoBeta = 0.5;

    @Option(names = "--kl-coef", paramLabel = "B", description = "PPO's initial KL coefficient (default: ${DEFAULT-VALUE})")
    double klCoef = 0.2;

    @Option(names = "--kl-target", paramLabel = "NATS", description = "adaptive KL target per response, 0 for a fixed "
            + "coefficient (default: ${DEFAULT-VALUE})")
    double klTarget = 6;

    @Option(names = "--kl-horizon", paramLabel = "N", description = "adaptive KL horizon in rollouts (default: "
            + "${DEFAULT-VALUE})")
    double klHorizon = 200;

    @Option(names = "--temperature", paramLabel = "T", description = "PPO rollout temperature (default: ${DEFAULT-VALUE})")
    double temperature = 1.0;

    @Option(names = "--top-k", paramLabel = "K", description = "PPO rollout top-k, 0 for none (default: ${DEFAULT-VALUE})")
    int topK = 0;

    @Option(names = "--lr-reward", paramLabel = "LR", description = "reward-model learning rate (default: ${DEFAULT-VALUE})")
    double lrReward = 2e-3;

    @Option(names = "--lr-dpo", paramLabel = "LR", description = "DPO learning rate (default: ${DEFAULT-VALUE})")
    double lrDpo = 5e-4;

    @Option(names = "--lr-ppo", paramLabel = "LR", description = "PPO learning rate (default: ${DEFAULT-VALUE})")
    double lrPpo = 5e-4;

    @Option(names = "--max-pairs", paramLabel = "N", description = "training pairs at most, 0 for every line "
            + "(default: ${DEFAULT-VALUE})")
    int maxPairs = 0;

    @Option(names = "--eval-prompts", paramLabel = "N", description = "held-out prompts judged (default: ${DEFAULT-VALUE})")
    int evalPrompts = 120;

    @Option(names = "--pretrain-steps", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int pretrainSteps = 600;

    @Option(names = "--max-chars", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int maxChars = 1_000_000;

    @Option(names = "--seed", paramLabel = "S", description = "seed of sampling and batches (default: ${DEFAULT-VALUE})")
    long seed = 42;

    @Option(names = "--threads", paramLabel = "N", description = "as in FineTuneExample (default: ${DEFAULT-VALUE})")
    int threads = 1;

    @Option(names = "--out", paramLabel = "DIR", description = "output directory (default: ${DEFAULT-VALUE})")
    Path out = Path.of("peft-runs", "preference");

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "pretrained-model cache (default: ${DEFAULT-VALUE})")
    Path cacheDir = Path.of(System.getProperty("user.home"), ".cache", "peft4j", "pretrained");

    @Option(names = "--no-progress", description = "no progress lines")
    boolean noProgress;

    @Option(names = "--tiny", description = "tiny model and data, for tests")
    boolean tiny;

    /** Name of the reward model's adapter beside the PPO policy. */
    static final String REWARD_ADAPTER = "reward";
    /** Learning rate of the judge language model (the examples' LoRA rate). */
    static final double JUDGE_LEARNING_RATE = 5e-3;
    /** Temperature of the before/after samples. */
    static final double SAMPLE_TEMPERATURE = 0.7;

    /**
     * One row of the table.
     *
     * @param method what was trained
     * @param trainableParams parameters it trained
     * @param pairAccuracy held-out preference accuracy (reward model: its rewards; DPO: its implicit
     *     rewards), NaN where the method has none
     * @param lmWinRate share of held-out prompts where its continuation is likelier than the base's
     *     under the judge language model, per character (ties count half); NaN for the base and the
     *     reward model
     * @param wordWinRate the same under the function-word judge
     * @param realBitsPerChar bits per character of the real held-out continuations, NaN for the reward model
     * @param kl mean KL to the reference along its own held-out continuations, nats per response
     *     ({@link Sequences#referenceKl})
     * @param meanReward mean reward-model score of its held-out continuations
     * @param msPerStep mean wall time of a training step (PPO: of an iteration), first one excluded
     */
    record Row(String method, long trainableParams, double pairAccuracy, double lmWinRate, double wordWinRate,
               double realBitsPerChar, double kl, double meanReward, double msPerStep) {
    }

    /**
     * What a run produced.
     *
     * @param rows base, reward model, DPO, PPO
     * @param rewardHeldOut the reward model on the held-out pairs
     * @param dpoHeldOut DPO on the held-out pairs
     * @param ppo PPO's metrics per iteration
     * @param reloadMaxAbsDiff largest difference of next-token probabilities and rewards between the
     *     trained adapters and the same adapters reloaded from disk
     * @param files the report files written
     */
    record Outcome(List<Row> rows, RewardMetrics rewardHeldOut, DpoMetrics dpoHeldOut, List<PpoMetrics> ppo,
                   double reloadMaxAbsDiff, List<Path> files) {
    }

    /** The preference data: prompts, real and sampled continuations, as ids and text. */
    record Pairs(List<PreferencePair> pairs, List<String> promptTexts) {
        List<int[]> prompts() {
            return pairs.stream().map(PreferencePair::prompt).toList();
        }

        List<int[]> chosen() {
            return pairs.stream().map(PreferencePair::chosen).toList();
        }
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new PreferenceExample()).execute(args));
    }

    @Override
    public Integer call() {
        run();
        return 0;
    }

    private void validate() {
        for (Object[] o : new Object[][] {{"--prompt-chars", promptChars}, {"--response-chars", responseChars},
                {"--rank", rank}, {"--reward-steps", rewardSteps}, {"--dpo-steps", dpoSteps},
                {"--ppo-iterations", ppoIterations}, {"--judge-steps", judgeSteps}, {"--pairs-per-step", pairsPerStep}, {"--ppo-prompts", ppoPrompts},
                {"--eval-prompts", evalPrompts}, {"--pretrain-steps", pretrainSteps}, {"--max-chars", maxChars},
                {"--threads", threads}}) {
            if ((int) o[1] <= 0) {
                throw new ParameterException(spec.commandLine(), o[0] + " must be positive; got " + o[1]);
            }
        }
        if (maxPairs < 0) {
            throw new ParameterException(spec.commandLine(), "--max-pairs must not be negative; got " + maxPairs);
        }
        if (!(dpoBeta > 0 && klCoef >= 0 && klTarget >= 0 && klHorizon > 0 && temperature > 0 && topK >= 0
                && lrReward > 0 && lrDpo > 0 && lrPpo > 0)) {
            throw new ParameterException(spec.commandLine(), "--dpo-beta, --kl-horizon, --temperature and the learning "
                    + "rates must be positive, --kl-coef, --kl-target and --top-k not negative");
        }
    }

    /** Runs the experiment and writes the report. */
    Outcome run() {
        validate();
        System.setProperty("java.awt.headless", "true");
        List<String> args = new ArrayList<>(List.of("--target", target, "--pretrain-steps", String.valueOf(pretrainSteps),
                "--max-chars", String.valueOf(maxChars), "--cache-dir", cacheDir.toString(), "--threads",
                String.valueOf(threads), "--no-progress"));
        if (tiny) {
            args.addAll(List.of("--d-model", "32", "--heads", "2", "--layers", "1", "--seq-len", "32", "--batch", "16"));
        }
        FineTuneExample settings = new FineTuneExample();
        try {
            FineTuneExample.commandLine(settings).parseArgs(args.toArray(String[]::new));
        } catch (ParameterException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        int context = settings.seqLen + CharModels.VIRTUAL_TOKENS;
        if (promptChars + responseChars > context) {
            throw new ParameterException(spec.commandLine(), "--prompt-chars " + promptChars + " + --response-chars "
                    + responseChars + " exceed the model's context of " + context + " characters");
        }
        if (!LanguageGuess.LANGUAGES.contains(target) || settings.sources.contains(target)) {
            throw new ParameterException(spec.commandLine(), "--target must be a known language that is not a "
                    + "pretraining language " + settings.sources + "; known: " + LanguageGuess.LANGUAGES);
        }
        long t0 = System.nanoTime();
        FineTuneExample.Base loaded = settings.loadOrPretrainBase();
        ComputationGraph base = loaded.graph();
        Supplier<ComputationGraph> fresh = () -> restore(loaded.cached());
        CharVocabulary vocab = loaded.data().vocab();

        List<String> docs = loaded.byLanguage().get(target);
        Pairs train = pairs(docs, vocab, base, false);
        Pairs heldOut = pairs(docs, vocab, base, true);
        System.out.printf(Locale.ROOT, "%s preference pairs: %,d train, %,d held-out (prompt %d chars, continuations "
                + "%d chars; rejected = sampled from the base at temperature 1)%n", target, train.pairs().size(),
                heldOut.pairs().size(), promptChars, responseChars);

        LoraConfig withHead = LoraConfig.builder().rank(rank).alpha(2.0 * rank).targetModulesRegex(CharModels.ATTENTION_QV)
                .modulesToSave(ScoreHead.NAME).build();
        LoraConfig plain = LoraConfig.builder().rank(rank).alpha(2.0 * rank).targetModulesRegex(CharModels.ATTENTION_QV)
                .build();

        // 1. reward model: adapter "reward" of the model PPO will train
        PeftModel rlhf = Peft.wrap(ScoreHead.decoder(base), withHead);
        rlhf.addAdapter(REWARD_ADAPTER, withHead);
        rlhf.setAdapter(REWARD_ADAPTER);
        rlhf.graph().setLearningRate(lrReward);
        RewardTrainer rewardTrainer = new RewardTrainer(rlhf, RewardConfig.builder().build());
        Random batches = new Random(seed);
        double rewardMs = timedSteps("reward model", rewardSteps, () -> {
            RewardMetrics m = rewardTrainer.step(sample(train.pairs(), pairsPerStep, batches));
            return String.format(Locale.ROOT, "loss %.3f acc %.2f", m.loss(), m.accuracy());
        });
        RewardMetrics rmHeldOut = rewardTrainer.evaluate(heldOut.pairs());
        long rewardParams = rlhf.trainableParameters();
        rlhf.setAdapter(PeftModel.DEFAULT_ADAPTER);
        RewardModel reward = new RewardModel(rlhf, REWARD_ADAPTER);
        System.out.printf(Locale.ROOT, "reward model: held-out accuracy %.3f, margin %.3f (%s)%n", rmHeldOut.accuracy(),
                rmHeldOut.margin(), since(t0));

        // 2. DPO on the plain decoder
        PeftModel dpo = Peft.wrap(base, plain);
        dpo.graph().setLearningRate(lrDpo);
        DpoTrainer dpoTrainer = new DpoTrainer(dpo, DpoConfig.builder().beta(dpoBeta).build());
        double dpoMs = timedSteps("DPO", dpoSteps, () -> {
            DpoMetrics m = dpoTrainer.step(sample(train.pairs(), pairsPerStep, batches));
            return String.format(Locale.ROOT, "loss %.3f margin %.3f", m.loss(), m.rewardMargin());
        });
        DpoMetrics dpoHeldOut = dpoTrainer.evaluate(heldOut.pairs());
        System.out.printf(Locale.ROOT, "DPO: held-out implicit-reward accuracy %.3f, margin %.3f (%s)%n",
                dpoHeldOut.rewardAccuracy(), dpoHeldOut.rewardMargin(), since(t0));

        // 3. PPO: the default adapter against the reward adapter, reference = adapters disabled
        rlhf.graph().setLearningRate(lrPpo);
        PpoConfig.Builder pb = PpoConfig.builder()
                .sampling(SamplingConfig.builder().temperature(temperature).topK(topK).maxNewTokens(responseChars).build())
                .klCoefficient(klCoef).miniBatches(2).seed(seed);
        if (klTarget > 0) {
            pb.adaptiveKl(klTarget, klHorizon);
        }
        PpoTrainer ppo = new PpoTrainer(rlhf, reward, pb.build());
        List<PpoMetrics> ppoMetrics = new ArrayList<>();
        List<int[]> trainPrompts = train.prompts();
        double ppoMs = timedSteps("PPO", ppoIterations, () -> {
            PpoMetrics m = ppo.step(sample(trainPrompts, ppoPrompts, batches));
            ppoMetrics.add(m);
            return String.format(Locale.ROOT, "reward %.3f KL %.2f beta %.3f", m.meanScore(), m.meanKl(),
                    m.klCoefficient());
        });

        System.out.printf(Locale.ROOT, "PPO: last reward %.3f, KL %.2f (%s)%n", ppoMetrics.get(ppoMetrics.size() - 1)
                .meanScore(), ppoMetrics.get(ppoMetrics.size() - 1).meanKl(), since(t0));

        // the judge language model: LoRA fine-tuned on the train lines, used by no method
        PeftModel judgeLm = Peft.wrap(base, plain);
        judgeLm.graph().setLearningRate(JUDGE_LEARNING_RATE);
        TextStream judgeText = TextStream.of(trainLines(docs), vocab);
        Random judgeBatches = new Random(seed + 11);
        double judgeMs = timedSteps("judge LM", judgeSteps, () -> {
            judgeLm.graph().fit(judgeText.randomBatch(settings.batch, settings.seqLen, judgeBatches));
            return String.format(Locale.ROOT, "loss %.3f", judgeLm.graph().score() / settings.seqLen);
        });
        System.out.printf(Locale.ROOT, "judge LM: %.0f ms/step (%s)%n", judgeMs, since(t0));

        // judge everything on held-out prompts
        List<Row> rows = new ArrayList<>();
        Judge judge = new Judge(heldOut, vocab, reward, judgeLm.graph());
        Judge.Samples baseSamples = judge.sample(base, null);
        rows.add(new Row("base (pretrained, no " + target + ")", 0, Double.NaN, Double.NaN, Double.NaN,
                judge.realBitsPerChar(base), 0, baseSamples.meanReward(), Double.NaN));
        rows.add(new Row("reward model (LoRA + head)", rewardParams, rmHeldOut.accuracy(), Double.NaN, Double.NaN,
                Double.NaN, Double.NaN, Double.NaN, rewardMs));
        Judge.Samples dpoSamples = judge.sample(dpo.graph(), dpo);
        rows.add(new Row("DPO (LoRA)", dpo.trainableParameters(), dpoHeldOut.rewardAccuracy(),
                Judge.winRate(dpoSamples.lm(), baseSamples.lm()), Judge.winRate(dpoSamples.words(), baseSamples.words()),
                judge.realBitsPerChar(dpo.graph()), dpoSamples.kl(), dpoSamples.meanReward(), dpoMs));
        Judge.Samples ppoSamples = judge.sample(rlhf.graph(), rlhf);
        rows.add(new Row("PPO (LoRA + value head)", rlhf.trainableParameters(), Double.NaN,
                Judge.winRate(ppoSamples.lm(), baseSamples.lm()), Judge.winRate(ppoSamples.words(), baseSamples.words()),
                judge.realBitsPerChar(rlhf.graph()), ppoSamples.kl(), ppoSamples.meanReward(), ppoMs));

        // samples before and after, adapters saved and reloaded
        int shown = Math.min(3, heldOut.pairs().size());
        List<int[]> shownPrompts = heldOut.prompts().subList(0, shown);
        List<String> fromBase = continuations(base, shownPrompts, vocab);
        List<String> fromDpo = continuations(dpo.graph(), shownPrompts, vocab);
        List<String> fromPpo = continuations(rlhf.graph(), shownPrompts, vocab);
        List<String[]> samples = new ArrayList<>();
        for (int i = 0; i < shown; i++) {
            samples.add(new String[] {heldOut.promptTexts().get(i),
                    vocab.decode(heldOut.pairs().get(i).chosen(), 0, responseChars), fromBase.get(i), fromDpo.get(i),
                    fromPpo.get(i)});
        }
        Path adapters = out.resolve("adapters");
        double reloadDiff = PreferenceReport.saveAndReload(rlhf, dpo, adapters, fresh, heldOut);

        double minutes = (System.nanoTime() - t0) / 6e10;
        String header = String.format(Locale.ROOT, "Preferences of real %s Europarl text over the base model's own "
                        + "continuations (%,d train / %,d held-out pairs, prompt %d + continuation %d characters); "
                        + "character decoder pretrained on %s (%,d steps%s); LoRA r = %d on q, v; reward model %d steps, "
                        + "DPO %d steps (beta %.2f), PPO %d iterations of %d rollouts (temperature %.2f, top-k %d, KL "
                        + "coefficient %.3f%s); %d pairs per step; judge LM: LoRA fine-tuned %d steps on the train lines; "
                        + "seed %d; wall time %.1f min.", target,
                train.pairs().size(), heldOut.pairs().size(), promptChars, responseChars, settings.sources,
                pretrainSteps, loaded.fromCache() ? ", from cache" : "", rank, rewardSteps, dpoSteps, dpoBeta,
                ppoIterations, ppoPrompts, temperature, topK, klCoef, klTarget > 0 ? String.format(Locale.ROOT,
                        " adaptive to %.1f nats over %.0f rollouts", klTarget, klHorizon) : " fixed", pairsPerStep,
                judgeSteps, seed,
                minutes);
        List<Path> files = PreferenceReport.write(out, header, rows, rmHeldOut, dpoHeldOut, ppoMetrics, samples, target);
        System.out.println();
        System.out.println(header);
        System.out.println();
        System.out.print(PreferenceReport.markdown(rows, target));
        System.out.println();
        System.out.print(PreferenceReport.samplesMarkdown(samples));
        System.out.println();
        System.out.println("Adapters (PEFT layout) under " + adapters + "; reloaded from disk: largest difference "
                + String.format(Locale.ROOT, "%.2g", reloadDiff));
        System.out.println("Wrote " + files.stream().map(Path::toString).reduce((a, b) -> a + ", " + b).orElse(""));
        return new Outcome(rows, rmHeldOut, dpoHeldOut, ppoMetrics, reloadDiff, files);
    }

    /** Pairs from the train or held-out lines (every tenth line is held out, as in {@link DomainData}). */
    private Pairs pairs(List<String> docs, CharVocabulary vocab, ComputationGraph base, boolean heldOut) {
        List<int[]> prompts = new ArrayList<>();
        List<int[]> chosen = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        long chars = 0;
        int limit = heldOut ? evalPrompts : (maxPairs == 0 ? Integer.MAX_VALUE : maxPairs);
        for (int i = 0; i < docs.size() && chars < maxChars && prompts.size() < limit; i++) {
            String d = docs.get(i);
            chars += d.length();
            if ((i % 10 == 0) != heldOut || d.codePointCount(0, d.length()) < promptChars + responseChars) {
                continue;
            }
            int[] ids = vocab.encode(d);
            prompts.add(java.util.Arrays.copyOfRange(ids, 0, promptChars));
            chosen.add(java.util.Arrays.copyOfRange(ids, promptChars, promptChars + responseChars));
            texts.add(vocab.decode(ids, 0, promptChars));
        }
        if (prompts.size() < 2) {
            throw new IllegalStateException("only " + prompts.size() + " " + (heldOut ? "held-out" : "train") + " lines "
                    + "of " + target + " have " + (promptChars + responseChars) + " characters; raise --max-chars or "
                    + "shorten --prompt-chars/--response-chars");
        }
        List<int[]> rejected = Sequences.generate(base, prompts, SamplingConfig.builder().temperature(1.0)
                .maxNewTokens(responseChars).build(), seed + (heldOut ? 1 : 0));
        return new Pairs(PreferencePair.zip(prompts, chosen, rejected), List.copyOf(texts));
    }

    /** The train lines (every line but each tenth), within --max-chars, as {@link #pairs} reads them. */
    private List<String> trainLines(List<String> docs) {
        List<String> out = new ArrayList<>();
        long chars = 0;
        for (int i = 0; i < docs.size() && chars < maxChars; i++) {
            chars += docs.get(i).length();
            if (i % 10 != 0) {
                out.add(docs.get(i));
            }
        }
        return out;
    }

    private static <T> List<T> sample(List<T> from, int n, Random rnd) {
        List<T> copy = new ArrayList<>(from);
        Collections.shuffle(copy, rnd);
        return copy.subList(0, Math.min(n, copy.size()));
    }

    /** Runs {@code steps} steps, prints progress, returns the mean milliseconds per step (the first excluded). */
    private double timedSteps(String task, int steps, Supplier<String> step) {
        long timed = 0;
        int every = Math.max(1, steps / 10);
        for (int s = 0; s < steps; s++) {
            long t = System.nanoTime();
            String msg = step.get();
            long dt = System.nanoTime() - t;
            if (s > 0) {
                timed += dt;
            }
            if (!noProgress && ((s + 1) % every == 0 || s + 1 == steps)) {
                System.out.printf(Locale.ROOT, "  %-12s %4d/%d  %s  (%.0f ms/step)%n", task, s + 1, steps, msg, dt / 1e6);
            }
        }
        return steps > 1 ? timed / 1e6 / (steps - 1) : Double.NaN;
    }

    private List<String> continuations(ComputationGraph g, List<int[]> prompts, CharVocabulary vocab) {
        return Sequences.generate(g, prompts, SamplingConfig.builder().temperature(SAMPLE_TEMPERATURE)
                .maxNewTokens(responseChars).build(), seed).stream().map(y -> vocab.decode(y, 0, y.length)).toList();
    }

    private static String since(long t0) {
        return String.format(Locale.ROOT, "%.1f s since start", (System.nanoTime() - t0) / 1e9);
    }

    private static ComputationGraph restore(Path file) {
        try {
            return ModelSerializer.restoreComputationGraph(file.toFile(), false);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the cached pretrained model " + file, e);
        }
    }

    /**
     * The held-out judge: samples one continuation per held-out prompt (temperature 1, the same
     * seed for every model) and scores it with two judges no method trained on (the judge language
     * model's log-likelihood per character, and the function-word language score), the reward
     * model and the KL to the reference; and computes bits per character of the real continuations.
     */
    private final class Judge {
        private final Pairs heldOut;
        private final CharVocabulary vocab;
        private final RewardModel reward;
        private final ComputationGraph judgeLm;

        Judge(Pairs heldOut, CharVocabulary vocab, RewardModel reward, ComputationGraph judgeLm) {
            this.heldOut = heldOut;
            this.vocab = vocab;
            this.reward = reward;
            this.judgeLm = judgeLm;
        }

        /** Per held-out prompt: the judge LM's mean log-likelihood per character, and the word score. */
        record Samples(List<int[]> responses, double[] lm, double[] words, double kl, double meanReward) {
        }

        /** Samples from {@code g}; KL against {@code peft} with its adapters disabled (0 when {@code peft} is null). */
        Samples sample(ComputationGraph g, PeftModel peft) {
            List<int[]> prompts = heldOut.prompts();
            List<int[]> ys = Sequences.generate(g, prompts, SamplingConfig.builder().maxNewTokens(responseChars).build(),
                    seed + 7);
            double kl = peft == null ? 0 : java.util.Arrays.stream(Sequences.referenceKl(peft, prompts, ys)).average()
                    .orElse(Double.NaN);
            double[] lm = Sequences.logProbs(judgeLm, prompts, ys);
            double[] words = new double[ys.size()];
            for (int i = 0; i < ys.size(); i++) {
                lm[i] /= ys.get(i).length;
                words[i] = languageScore(vocab.decode(ys.get(i), 0, ys.get(i).length));
            }
            double[] r = reward.score(prompts, ys);
            return new Samples(ys, lm, words, kl, java.util.Arrays.stream(r).average().orElse(Double.NaN));
        }

        /** Target-language function words minus those of the best other language. */
        double languageScore(String text) {
            Map<String, Integer> hits = LanguageGuess.hits(text);
            int own = hits.getOrDefault(target, 0);
            int other = hits.entrySet().stream().filter(e -> !e.getKey().equals(target)).mapToInt(Map.Entry::getValue)
                    .max().orElse(0);
            return own - other;
        }

        /** Share of prompts where {@code a} scores higher than {@code b}, ties counting half. */
        static double winRate(double[] a, double[] b) {
            double w = 0;
            for (int i = 0; i < a.length; i++) {
                w += a[i] > b[i] ? 1 : a[i] == b[i] ? 0.5 : 0;
            }
            return w / a.length;
        }

        double realBitsPerChar(ComputationGraph g) {
            double[][] lp = Sequences.tokenLogProbs(g, heldOut.prompts(), heldOut.chosen());
            double nats = 0;
            long n = 0;
            for (double[] row : lp) {
                for (double v : row) {
                    nats -= v;
                    n++;
                }
            }
            return nats / n / Math.log(2);
        }
    }
}
