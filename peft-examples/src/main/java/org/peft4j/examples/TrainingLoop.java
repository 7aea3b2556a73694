package org.peft4j.examples;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.BiConsumer;
import java.util.function.Supplier;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.deeplearning4j.nn.graph.ComputationGraph;

/**
 * Plain training: {@code steps} calls of {@link ComputationGraph#fit} on random batches (windows of
 * text for the character models, e-mails for the spam classifier), with a progress bar (step,
 * loss, ETA) on standard error and a memory sample after every step.
 *
 * <p>Thread-safety: stateless.
 */
final class TrainingLoop {

    /**
     * What one run measured.
     *
     * @param losses training loss after each step
     * @param msPerStep mean milliseconds per step, the first (warm-up) step excluded
     */
    record Outcome(List<Double> losses, double msPerStep) {
    }

    private TrainingLoop() {
    }

    static Outcome run(ComputationGraph graph, TextStream text, int steps, int batch, int seqLen, Random rnd,
                       String task, MemoryProbe probe, boolean progress) {
        // DL4J's score of a sequence output sums the loss over time steps: per character is / seqLen
        return run(graph, () -> text.randomBatch(batch, seqLen, rnd), ComputationGraph::fit, 1.0 / seqLen, steps,
                task, probe, progress);
    }

    /**
     * {@code steps} times: take a batch from {@code batches} (not timed), {@code fit} it (timed),
     * record {@code graph.score() * lossScale}, sample memory and advance the progress bar.
     *
     * @param <B> the batch type ({@code DataSet} or {@code MultiDataSet})
     */
    static <B> Outcome run(ComputationGraph graph, Supplier<B> batches, BiConsumer<ComputationGraph, B> fit,
                           double lossScale, int steps, String task, MemoryProbe probe, boolean progress) {
        List<Double> losses = new ArrayList<>(steps);
        long timed = 0;
        ProgressBarBuilder pbb = new ProgressBarBuilder().setTaskName(String.format("%-9s", task)).setInitialMax(steps)
                .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500).showSpeed()
                .setConsumer(new ConsoleProgressBarConsumer(System.err, 110)).setMaxRenderedLength(110)
                .setUnit(" steps", 1).setSpeedUnit(java.time.temporal.ChronoUnit.SECONDS);
        try (ProgressBar pb = progress ? pbb.build() : null) {
            for (int s = 0; s < steps; s++) {
                B batch = batches.get();
                long t0 = System.nanoTime();
                fit.accept(graph, batch);
                long dt = System.nanoTime() - t0;
                if (s > 0) {
                    timed += dt;
                }
                double loss = graph.score() * lossScale;
                losses.add(loss);
                probe.sample();
                if (pb != null) {
                    pb.step();
                    pb.setExtraMessage(String.format(java.util.Locale.ROOT, "loss %.3f", loss));
                }
            }
        }
        double ms = steps > 1 ? timed / 1e6 / (steps - 1) : 0;
        return new Outcome(losses, ms);
    }

    /** Formats a duration as {@code 1m 05s}. */
    static String human(Duration d) {
        return String.format(java.util.Locale.ROOT, "%dm %02ds", d.toMinutes(), d.toSecondsPart());
    }
}
