package org.peft4j.examples;

import java.io.Console;
import java.io.PrintStream;
import java.time.Duration;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.BiConsumer;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.deeplearning4j.nn.graph.ComputationGraph;

/**
 * Plain training: {@code steps} calls of {@link ComputationGraph#fit} on random batches (windows of
 * text for the character models, e-mails for the spam classifier), with progress on standard
 * error ({@link Progress}: a bar on a terminal, plain lines in a log) and a memory sample after
 * every step.
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
     * The loss of {@code graph}, untouched, on the {@code steps} batches that {@link #run} with the
     * same arguments would train on, in the same units: the no-training reference for a chart of
     * training losses.
     */
    static List<Double> lossesWithoutTraining(ComputationGraph graph, TextStream text, int steps, int batch, int seqLen,
                                              Random rnd) {
        List<Double> losses = new ArrayList<>(steps);
        for (int s = 0; s < steps; s++) {
            losses.add(graph.score(text.randomBatch(batch, seqLen, rnd)) / seqLen);
        }
        graph.clear();
        return losses;
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
        try (Progress pb = progress ? Progress.start(task, steps, System.err) : Progress.NONE) {
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
                pb.step(loss);
            }
        }
        double ms = steps > 1 ? timed / 1e6 / (steps - 1) : 0;
        return new Outcome(losses, ms);
    }

    /**
     * Progress of one training run: a redrawn bar (step, loss, ETA) on a terminal; on anything
     * else (a log file, a pipe, CI) plain lines, about one per tenth of the run, so a log holds
     * no carriage-return redraws.
     */
    interface Progress extends AutoCloseable {
        /** Reports nothing. */
        Progress NONE = loss -> { };

        /** One step done, with its loss. */
        void step(double loss);

        @Override
        default void close() {
        }

        /** A bar when standard output is a terminal, otherwise {@link #lines}. */
        static Progress start(String task, int steps, PrintStream out) {
            return isTerminal() ? bar(task, steps, out) : lines(task, steps, out, System::nanoTime);
        }

        /** Plain lines: the first step, every {@code ceil(steps / 10)}-th step and the last. */
        static Progress lines(String task, int steps, PrintStream out, LongSupplier clock) {
            long start = clock.getAsLong();
            int every = Math.max(1, (steps + 9) / 10);
            int[] done = {0};
            return loss -> {
                int s = ++done[0];
                if (s == 1 || s % every == 0 || s == steps) {
                    double sec = (clock.getAsLong() - start) / 1e9;
                    double eta = sec / s * (steps - s);
                    out.printf(Locale.ROOT, "%-9s step %d/%d  loss %.3f  %.1f s elapsed, %s left%n", task, s, steps, loss,
                            sec, human(Duration.ofMillis(Math.round(eta * 1000))));
                }
            };
        }

        private static Progress bar(String task, int steps, PrintStream out) {
            ProgressBar pb = new ProgressBarBuilder().setTaskName(String.format("%-9s", task)).setInitialMax(steps)
                    .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500).showSpeed()
                    .setConsumer(new ConsoleProgressBarConsumer(out, 110)).setMaxRenderedLength(110)
                    .setUnit(" steps", 1).setSpeedUnit(ChronoUnit.SECONDS).build();
            return new Progress() {
                @Override
                public void step(double loss) {
                    pb.step();
                    pb.setExtraMessage(String.format(Locale.ROOT, " loss %.3f", loss));
                }

                @Override
                public void close() {
                    pb.close();
                }
            };
        }

        /**
         * Whether standard output is a terminal: {@code System.console()} is null when it is
         * redirected; on Java 22+, whose console may exist regardless, {@code Console.isTerminal()}
         * decides.
         */
        private static boolean isTerminal() {
            Console c = System.console();
            if (c == null) {
                return false;
            }
            try {
                return (Boolean) Console.class.getMethod("isTerminal").invoke(c);
            } catch (ReflectiveOperationException e) {
                return true; // before Java 22 a console exists only on a terminal
            }
        }
    }

    /** Formats a duration as {@code 1m 05s}. */
    static String human(Duration d) {
        return String.format(Locale.ROOT, "%dm %02ds", d.toMinutes(), d.toSecondsPart());
    }
}
