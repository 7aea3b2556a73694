package org.peft4j.examples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftModel;
import org.peft4j.core.rlhf.DpoMetrics;
import org.peft4j.core.rlhf.PpoMetrics;
import org.peft4j.core.rlhf.RewardMetrics;
import org.peft4j.core.rlhf.RewardModel;
import org.peft4j.core.rlhf.ScoreHead;
import org.peft4j.core.rlhf.Sequences;

/**
 * The files of {@link PreferenceExample}: the table ({@code results.md}), the reward and KL of each
 * PPO iteration ({@code ppo-reward-kl.png}, XChart), the continuations before and after
 * ({@code samples.md}), and the adapters saved in PEFT's layout and reloaded onto a fresh base.
 *
 * <p>Thread-safety: stateless.
 */
final class PreferenceReport {

    static final String MARKDOWN = "results.md";
    static final String CHART = "ppo-reward-kl.png";
    static final String SAMPLES = "samples.md";

    private PreferenceReport() {
    }

    private static String num(double v, String fmt) {
        return Double.isNaN(v) ? "—" : String.format(Locale.ROOT, fmt, v);
    }

    /** The comparison table. */
    static String markdown(List<PreferenceExample.Row> rows, String target) {
        StringBuilder sb = new StringBuilder();
        sb.append("| method | trainable params | held-out pair accuracy | win rate vs base: LM judge "
                + "| win rate vs base: word judge | real-text bits/char | KL to reference (nats/response) "
                + "| reward-model score | ms/step |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (PreferenceExample.Row r : rows) {
            sb.append(String.format(Locale.ROOT, "| %s | %,d | %s | %s | %s | %s | %s | %s | %s |%n", r.method(),
                    r.trainableParams(), num(r.pairAccuracy(), "%.3f"), num(r.lmWinRate(), "%.3f"),
                    num(r.wordWinRate(), "%.3f"), num(r.realBitsPerChar(), "%.3f"), num(r.kl(), "%.2f"),
                    num(r.meanReward(), "%.3f"), num(r.msPerStep(), "%.0f")));
        }
        sb.append(String.format(Locale.ROOT, "%nHeld-out pair accuracy: how often the method ranks the real "
                + "continuation above the base model's sample (reward model: its reward; DPO: its implicit reward "
                + "β·log π/π_ref). Win rates: share of held-out prompts where the method's continuation (temperature 1, "
                + "same seed as the base) beats the base's (ties count half) under a judge no method trained on: the LM "
                + "judge (a LoRA of the base fine-tuned on the %s train lines) by log-likelihood per character, the "
                + "word judge by %s function words net of the best other language's. Real-text bits/char: the real held-out continuations under the model. KL: "
                + "Σ over positions of KL(π‖π_ref) along its own continuations, exact over the vocabulary. ms/step: PPO per iteration (rollout, scoring and "
                + "every update).%n", target, target));
        return sb.toString();
    }

    /** The before/after samples: prompt, real continuation, base, DPO, PPO. */
    static String samplesMarkdown(List<String[]> samples) {
        StringBuilder sb = new StringBuilder("Continuations of held-out prompts (temperature "
                + PreferenceExample.SAMPLE_TEMPERATURE + ", same seed for every model):\n\n");
        String[] who = {"prompt", "real continuation", "base", "DPO", "PPO"};
        for (String[] s : samples) {
            for (int k = 0; k < who.length; k++) {
                sb.append(String.format(Locale.ROOT, "- %-17s `%s`%n", who[k] + ":", s[k].replace("`", "'")));
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** Writes every file under {@code out}; returns the paths written. */
    static List<Path> write(Path out, String header, List<PreferenceExample.Row> rows, RewardMetrics rm,
                            DpoMetrics dpo, List<PpoMetrics> ppo, List<String[]> samples, String target) {
        List<Path> written = new ArrayList<>();
        StringBuilder md = new StringBuilder(header).append("\n\n").append(markdown(rows, target));
        md.append(String.format(Locale.ROOT, "%nReward model on held-out pairs: accuracy %.3f, margin %.3f, loss %.4f. "
                + "DPO on held-out pairs: loss %.4f, rewards chosen %.3f / rejected %.3f, accuracy %.3f, margin %.3f.%n",
                rm.accuracy(), rm.margin(), rm.loss(), dpo.loss(), dpo.rewardsChosen(), dpo.rewardsRejected(),
                dpo.rewardAccuracy(), dpo.rewardMargin()));
        md.append("\nPPO per iteration:\n\n| iteration | reward | KL | beta | entropy | clip fraction | value loss |\n"
                + "|---:|---:|---:|---:|---:|---:|---:|\n");
        int every = Math.max(1, ppo.size() / 20);
        for (int i = 0; i < ppo.size(); i++) {
            if (i % every == 0 || i == ppo.size() - 1) {
                PpoMetrics m = ppo.get(i);
                md.append(String.format(Locale.ROOT, "| %d | %.3f | %.2f | %.4f | %.3f | %.3f | %.3f |%n", i + 1,
                        m.meanScore(), m.meanKl(), m.klCoefficient(), m.meanEntropy(), m.clipFraction(), m.valueLoss()));
            }
        }
        try {
            Files.createDirectories(out);
            written.add(Files.writeString(out.resolve(MARKDOWN), md.toString()));
            written.add(Files.writeString(out.resolve(SAMPLES), samplesMarkdown(samples)));
            Path png = out.resolve(CHART);
            BitmapEncoder.saveBitmap(chart(ppo, target), png.toString(), BitmapEncoder.BitmapFormat.PNG);
            written.add(png);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the report under " + out, e);
        }
        return written;
    }

    /** Mean reward (left axis) and KL to the reference (right axis) per PPO iteration. */
    static XYChart chart(List<PpoMetrics> ppo, String target) {
        XYChart c = new XYChartBuilder().width(900).height(520).title("PPO on " + target + ": reward and KL per iteration")
                .xAxisTitle("iteration").yAxisTitle("mean reward-model score").build();
        c.getStyler().setMarkerSize(0);
        c.getStyler().setLegendPosition(Styler.LegendPosition.InsideNW);
        double[] x = new double[ppo.size()];
        double[] reward = new double[ppo.size()];
        double[] kl = new double[ppo.size()];
        for (int i = 0; i < ppo.size(); i++) {
            x[i] = i + 1;
            reward[i] = ppo.get(i).meanScore();
            kl[i] = ppo.get(i).meanKl();
        }
        c.addSeries("reward (left)", x, reward).setMarker(SeriesMarkers.NONE);
        c.addSeries("KL to reference, nats/response (right)", x, kl).setMarker(SeriesMarkers.NONE).setYAxisGroup(1);
        c.setYAxisGroupTitle(1, "KL (nats per response)");
        c.getStyler().setYAxisGroupPosition(1, Styler.YAxisPosition.Right);
        return c;
    }

    /**
     * Saves the PPO model's adapters (the policy with its value head at {@code dir/rlhf}, the reward
     * model in its {@code reward} sub-directory) and the DPO adapter ({@code dir/dpo}) in PEFT's
     * layout, loads them onto a fresh base, and returns the largest difference of held-out
     * log-probabilities and rewards between the trained and the reloaded models.
     */
    static double saveAndReload(PeftModel rlhf, PeftModel dpo, Path dir, Supplier<ComputationGraph> fresh,
                                PreferenceExample.Pairs heldOut) {
        try {
            rlhf.saveAdapter(dir.resolve("rlhf"));
            dpo.saveAdapter(dir.resolve("dpo"));
            PeftModel rlhf2 = Peft.load(ScoreHead.decoder(fresh.get()), dir.resolve("rlhf"));
            PeftModel dpo2 = Peft.load(fresh.get(), dir.resolve("dpo"));
            int n = Math.min(16, heldOut.pairs().size());
            List<int[]> p = heldOut.prompts().subList(0, n);
            List<int[]> y = heldOut.chosen().subList(0, n);
            double d = maxDiff(Sequences.logProbs(dpo.graph(), p, y), Sequences.logProbs(dpo2.graph(), p, y));
            d = Math.max(d, maxDiff(Sequences.logProbs(rlhf.graph(), p, y), Sequences.logProbs(rlhf2.graph(), p, y)));
            d = Math.max(d, maxDiff(new RewardModel(rlhf, PreferenceExample.REWARD_ADAPTER).score(p, y),
                    new RewardModel(rlhf2, PreferenceExample.REWARD_ADAPTER).score(p, y)));
            return d;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save or reload the adapters under " + dir, e);
        }
    }

    private static double maxDiff(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }
}
