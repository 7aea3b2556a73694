package org.peft4j.examples;

import java.awt.BasicStroke;
import java.awt.Color;
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
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.Marker;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * Writes the comparison: a markdown table ({@code results.md}, also printed), the same figures as
 * CSV ({@code results.csv}), the training-loss curves as a PNG ({@code loss-curves.png}, XChart;
 * see {@link #chart}),
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
    /** A table cell that does not apply (an untrained row's time and memory, nothing saved). */
    static final String NONE = "–";

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
            boolean trained = r.trainableParams() > 0;
            sb.append(String.format(Locale.ROOT,
                    "| %s | %,d | %.2f | %s | %s | %s | %s | %.4f | %.3f | %.3f | %.4f | %.4f | %.4f | %.4f | %s |%n",
                    r.method(), r.trainableParams(), r.trainablePercent(),
                    trained ? cell("%.2f", r.trainStateBytes() / MB) : NONE,
                    trained ? cell("%.0f", r.peakOffHeapBytes() / MB) : NONE,
                    trained ? cell("%.0f", r.peakHeapBytes() / MB) : NONE,
                    trained ? cell("%.1f", r.msPerStep()) : NONE, m.loss(), m.bitsPerChar(),
                    r.sourceBitsPerChar(), m.accuracy(), m.precision(), m.recall(), m.f1(),
                    r.savedBytes() == 0 ? NONE : cell("%,d", r.savedBytes() / 1024)));
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

    static String cell(String format, Object value) {
        return String.format(Locale.ROOT, format, value);
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

    /**
     * Training loss per method against the step (exponential moving average, 0.1), all on the same
     * sequence of training batches; the zero-shot row's curve is the base model's loss on those
     * batches, so every method is compared with what no training gives on the same data.
     */
    static XYChart chart(List<MethodResult> rows) {
        Map<String, List<Double>> curves = new LinkedHashMap<>();
        rows.forEach(r -> curves.put(r.trainableParams() == 0 ? r.method() + " (base, no training)" : r.method(),
                r.trainLoss()));
        return lossChart("Adapting to the held-out language: loss on the training batches",
                "training loss (nats/char, EMA 0.1)", curves, Map.of());
    }

    /** Line styles, cycled: with the markers and colours, no two series look alike. */
    private static final BasicStroke[] LINES = {SeriesLines.SOLID, SeriesLines.DASH_DASH, SeriesLines.DOT_DOT,
            SeriesLines.DASH_DOT};
    private static final Marker[] MARKERS = {SeriesMarkers.CIRCLE, SeriesMarkers.SQUARE, SeriesMarkers.DIAMOND,
            SeriesMarkers.TRIANGLE_UP, SeriesMarkers.TRIANGLE_DOWN, SeriesMarkers.CROSS, SeriesMarkers.PLUS,
            SeriesMarkers.OVAL, SeriesMarkers.TRAPEZOID, SeriesMarkers.RECTANGLE};
    /** Ten colours that stay apart for common colour-vision deficiencies (Okabe-Ito, then two darker). */
    private static final Color[] COLOURS = {new Color(0, 0, 0), new Color(230, 159, 0), new Color(86, 180, 233),
            new Color(0, 158, 115), new Color(213, 94, 0), new Color(0, 114, 178), new Color(204, 121, 167),
            new Color(140, 120, 0), new Color(120, 60, 160), new Color(100, 100, 100)};
    /** Markers drawn per curve, about; each curve's markers sit at its own offset, so equal curves stay visible. */
    private static final int MARKERS_PER_CURVE = 20;

    /**
     * A chart of loss curves against the step, each smoothed by an exponential moving average (0.1)
     * and drawn with its own colour, line style and marker; empty curves are skipped. Markers sit
     * every few steps, at a different offset for each curve, so two curves that coincide (LoRA over
     * a float and over a 4-bit base) both stay visible. {@code references} are horizontal lines
     * (name to value), drawn thin and grey.
     */
    static XYChart lossChart(String title, String yTitle, Map<String, List<Double>> curves,
                             Map<String, Double> references) {
        XYChart c = new XYChartBuilder().width(1000).height(600).title(title).xAxisTitle("step").yAxisTitle(yTitle)
                .build();
        c.getStyler().setMarkerSize(7).setLegendPosition(Styler.LegendPosition.OutsideE).setAntiAlias(true);
        c.getStyler().setXAxisDecimalPattern("#,##0").setYAxisDecimalPattern("0.00");
        int steps = curves.values().stream().mapToInt(List::size).max().orElse(1);
        int every = Math.max(1, steps / MARKERS_PER_CURVE);
        int i = 0;
        for (Map.Entry<String, List<Double>> e : curves.entrySet()) {
            List<Double> curve = e.getValue();
            if (curve.isEmpty()) {
                continue;
            }
            int offset = i % every;
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            double ema = curve.get(0);
            for (int k = 0; k < curve.size(); k++) {
                ema = k == 0 ? ema : 0.9 * ema + 0.1 * curve.get(k);
                if (k == 0 || k % every == offset || k == curve.size() - 1) {
                    xs.add(k + 1.0);
                    ys.add(ema);
                }
            }
            XYSeries s = c.addSeries(e.getKey(), xs, ys);
            Color colour = COLOURS[i % COLOURS.length];
            s.setLineStyle(LINES[i % LINES.length]).setLineColor(colour).setLineWidth(1.6f);
            s.setMarker(MARKERS[i % MARKERS.length]).setMarkerColor(colour);
            i++;
        }
        for (Map.Entry<String, Double> r : references.entrySet()) {
            XYSeries s = c.addSeries(r.getKey(), new double[] {1, Math.max(2, steps)},
                    new double[] {r.getValue(), r.getValue()});
            s.setLineStyle(SeriesLines.DASH_DASH).setLineColor(Color.GRAY).setLineWidth(1f);
            s.setMarker(SeriesMarkers.NONE);
        }
        return c;
    }
}
