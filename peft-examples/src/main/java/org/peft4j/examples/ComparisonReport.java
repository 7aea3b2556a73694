package org.peft4j.examples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * Writes the comparison: a markdown table ({@code results.md}, also printed), the same figures as
 * CSV ({@code results.csv}), the training-loss curves as a PNG ({@code loss-curves.png}, XChart),
 * and the generated samples ({@code samples.md}).
 *
 * <p>Thread-safety: stateless.
 */
final class ComparisonReport {

    static final String MARKDOWN = "results.md";
    static final String CSV = "results.csv";
    static final String CHART = "loss-curves.png";
    static final String SAMPLES = "samples.md";

    private static final double MB = 1024.0 * 1024.0;

    private ComparisonReport() {
    }

    /** The markdown table of {@code rows}. */
    static String markdown(List<MethodResult> rows) {
        StringBuilder sb = new StringBuilder();
        sb.append("| method | trainable params | trainable % | train state MB | peak RSS MB | peak heap MB "
                + "| ms/step | held-out loss | bits/char | source bits/char | next-char acc | macro P | macro R "
                + "| macro F1 | saved KB |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (MethodResult r : rows) {
            HeldOutMetrics m = r.target();
            sb.append(String.format(Locale.ROOT,
                    "| %s | %,d | %.2f | %.2f | %.0f | %.0f | %.1f | %.4f | %.3f | %.3f | %.4f | %.4f | %.4f | %.4f | %s |%n",
                    r.method(), r.trainableParams(), r.trainablePercent(), r.trainStateBytes() / MB,
                    r.peakOffHeapBytes() / MB, r.peakHeapBytes() / MB, r.msPerStep(), m.loss(), m.bitsPerChar(),
                    r.sourceBitsPerChar(), m.accuracy(), m.precision(), m.recall(), m.f1(),
                    r.savedBytes() == 0 ? "-" : String.format(Locale.ROOT, "%,d", r.savedBytes() / 1024)));
        }
        return sb.toString();
    }

    /** The CSV of {@code rows}, with a header line. */
    static String csv(List<MethodResult> rows) {
        StringBuilder sb = new StringBuilder("method,trainable_params,all_params,trainable_pct,train_state_bytes,"
                + "peak_rss_bytes,peak_heap_bytes,ms_per_step,heldout_loss_nats,heldout_bits_per_char,"
                + "source_bits_per_char,next_char_accuracy,macro_precision,macro_recall,macro_f1,saved_bytes,"
                + "reload_max_abs_diff\n");
        for (MethodResult r : rows) {
            HeldOutMetrics m = r.target();
            sb.append(String.format(Locale.ROOT, "%s,%d,%d,%.6f,%d,%d,%d,%.3f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%s%n",
                    r.method(), r.trainableParams(), r.allParams(), r.trainablePercent(), r.trainStateBytes(),
                    r.peakOffHeapBytes(), r.peakHeapBytes(), r.msPerStep(), m.loss(), m.bitsPerChar(),
                    r.sourceBitsPerChar(), m.accuracy(), m.precision(), m.recall(), m.f1(), r.savedBytes(),
                    Double.isNaN(r.reloadMaxAbsDiff()) ? "" : String.format(Locale.ROOT, "%.3g", r.reloadMaxAbsDiff())));
        }
        return sb.toString();
    }

    /** Generated text per method, base model first. */
    static String samples(String prompt, List<MethodResult> rows) {
        StringBuilder sb = new StringBuilder("Prompt (held-out target text): `" + prompt.replace("`", "'") + "`\n\n");
        sb.append("| model | generated text |\n|---|---|\n");
        for (MethodResult r : rows) {
            sb.append("| ").append(r.method()).append(" | ")
                    .append(r.sample().replace("|", "\\|").replace("\n", " ")).append(" |\n");
        }
        return sb.toString();
    }

    /** Writes every file under {@code out}; returns the paths written. */
    static List<Path> write(Path out, String header, String prompt, List<MethodResult> rows) {
        List<Path> written = new ArrayList<>();
        try {
            Files.createDirectories(out);
            written.add(Files.writeString(out.resolve(MARKDOWN), header + "\n\n" + markdown(rows)));
            written.add(Files.writeString(out.resolve(CSV), csv(rows)));
            written.add(Files.writeString(out.resolve(SAMPLES), samples(prompt, rows)));
            Path png = out.resolve(CHART);
            BitmapEncoder.saveBitmap(chart(rows), png.toString(), BitmapEncoder.BitmapFormat.PNG);
            written.add(png);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the report under " + out, e);
        }
        return written;
    }

    /** Training loss (exponential moving average, 0.1) per method against the step. */
    static XYChart chart(List<MethodResult> rows) {
        Map<String, List<Double>> curves = new LinkedHashMap<>();
        rows.forEach(r -> curves.put(r.method(), r.trainLoss()));
        XYChart c = lossChart("Fine-tuning on the held-out language", "training loss (nats/char, EMA 0.1)", curves);
        int steps = Math.max(1, rows.stream().mapToInt(r -> r.trainLoss().size()).max().orElse(1));
        for (MethodResult r : rows) {
            if (r.trainLoss().isEmpty()) {
                XYSeries s = c.addSeries(r.method() + " (held-out)", new double[] {1, steps},
                        new double[] {r.target().loss(), r.target().loss()});
                s.setMarker(SeriesMarkers.NONE);
            }
        }
        return c;
    }

    /**
     * A chart of training-loss curves against the step, each smoothed by an exponential moving
     * average (0.1); empty curves are skipped.
     */
    static XYChart lossChart(String title, String yTitle, Map<String, List<Double>> curves) {
        XYChart c = new XYChartBuilder().width(900).height(560).title(title).xAxisTitle("step").yAxisTitle(yTitle)
                .build();
        c.getStyler().setMarkerSize(0);
        for (Map.Entry<String, List<Double>> e : curves.entrySet()) {
            List<Double> curve = e.getValue();
            if (curve.isEmpty()) {
                continue;
            }
            double[] x = new double[curve.size()];
            double[] y = new double[curve.size()];
            double ema = curve.get(0);
            for (int i = 0; i < curve.size(); i++) {
                ema = i == 0 ? ema : 0.9 * ema + 0.1 * curve.get(i);
                x[i] = i + 1;
                y[i] = ema;
            }
            c.addSeries(e.getKey(), x, y).setMarker(SeriesMarkers.NONE);
        }
        return c;
    }
}
