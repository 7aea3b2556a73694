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
import org.peft4j.quant.QuantSpec;

/**
 * Writes the spam example's comparison: {@code results.md} (the header, the table also printed, and
 * the NF4 table of the pretrained weights), {@code results.csv}, {@code nf4.csv} and the training-loss
 * curves {@code loss-curves.png} (XChart).
 *
 * <p>Thread-safety: stateless.
 */
final class SpamReport {

    static final String MARKDOWN = "results.md";
    static final String CSV = "results.csv";
    static final String NF4_CSV = "nf4.csv";
    static final String CHART = "loss-curves.png";

    private static final double MB = 1024.0 * 1024.0;
    /** Cross-entropy of answering 50/50 on the class-balanced training batches: the chart's reference line. */
    static final double CHANCE_LOSS = Math.log(2);

    private SpamReport() {
    }

    /** The markdown table of {@code rows}. */
    static String markdown(List<SpamResult> rows) {
        StringBuilder sb = new StringBuilder();
        sb.append("| method | trainable params | trainable % | peak RSS MB | peak heap MB | ms/step | accuracy "
                + "| spam precision | spam recall | spam F1 | saved KB | reloaded = trained |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (SpamResult r : rows) {
            sb.append(String.format(Locale.ROOT, "| %s | %,d | %.2f | %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %s | %s |%n",
                    r.method(), r.trainableParams(), r.trainablePercent(),
                    r.peakRssBytes() == 0 ? ComparisonReport.NONE : String.format(Locale.ROOT, "%.0f", r.peakRssBytes() / MB),
                    r.peakHeapBytes() == 0 ? ComparisonReport.NONE : String.format(Locale.ROOT, "%.0f", r.peakHeapBytes() / MB),
                    r.msPerStep() == 0 ? ComparisonReport.NONE : String.format(Locale.ROOT, "%.0f", r.msPerStep()),
                    r.accuracy(), r.precision(), r.recall(), r.f1(),
                    r.savedBytes() == 0 ? ComparisonReport.NONE : String.format(Locale.ROOT, "%,d (%s)", r.savedBytes() / 1024, r.savedAs()),
                    Double.isNaN(r.reloadMaxAbsDiff()) ? ComparisonReport.NONE : reloadCell(r)));
        }
        return sb.toString();
    }

    private static String reloadCell(SpamResult r) {
        if (r.reloadMaxAbsDiff() == 0) {
            return "identical";
        }
        return String.format(Locale.ROOT, "%s, max |Δp| %.2g", r.reloadSamePredictions() ? "same classes" : "DIFFERENT classes",
                r.reloadMaxAbsDiff());
    }

    /** The CSV of {@code rows}, with a header line. */
    static String csv(List<SpamResult> rows) {
        StringBuilder sb = new StringBuilder("method,trainable_params,all_params,trainable_pct,peak_rss_bytes,"
                + "peak_heap_bytes,ms_per_step,accuracy,spam_precision,spam_recall,spam_f1,saved_bytes,saved_as,"
                + "reload_max_abs_diff,reload_same_predictions\n");
        for (SpamResult r : rows) {
            sb.append(String.format(Locale.ROOT, "%s,%d,%d,%.6f,%d,%d,%.3f,%.6f,%.6f,%.6f,%.6f,%d,%s,%s,%s%n",
                    r.method(), r.trainableParams(), r.allParams(), r.trainablePercent(), r.peakRssBytes(),
                    r.peakHeapBytes(), r.msPerStep(), r.accuracy(), r.precision(), r.recall(), r.f1(), r.savedBytes(),
                    r.savedAs(), Double.isNaN(r.reloadMaxAbsDiff()) ? "" : String.format(Locale.ROOT, "%.3g",
                            r.reloadMaxAbsDiff()), Double.isNaN(r.reloadMaxAbsDiff()) ? "" : r.reloadSamePredictions()));
        }
        return sb.toString();
    }

    /** Writes every file under {@code out}; returns the paths written. */
    static List<Path> write(Path out, String header, List<SpamResult> rows, List<Nf4Report.Row> nf4, QuantSpec spec) {
        List<Path> written = new ArrayList<>();
        try {
            Files.createDirectories(out);
            written.add(Files.writeString(out.resolve(MARKDOWN), header + "\n\n" + markdown(rows) + "\n"
                    + Nf4Report.markdown(nf4, spec)));
            written.add(Files.writeString(out.resolve(CSV), csv(rows)));
            written.add(Files.writeString(out.resolve(NF4_CSV), Nf4Report.csv(nf4)));
            Map<String, List<Double>> curves = new LinkedHashMap<>();
            rows.forEach(r -> curves.put(r.method(), r.trainLoss()));
            Path png = out.resolve(CHART);
            BitmapEncoder.saveBitmap(ComparisonReport.lossChart("Fine-tuning all-MiniLM-L6-v2 to tell spam from ham",
                    "training loss (cross-entropy per e-mail, EMA 0.1)", curves,
                    Map.of(String.format(Locale.ROOT, "chance (ln 2 = %.3f)", CHANCE_LOSS), CHANCE_LOSS)),
                    png.toString(), BitmapEncoder.BitmapFormat.PNG);
            written.add(png);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the report under " + out, e);
        }
        return written;
    }
}
