package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;

/** The loss charts: every series looks different, and equal curves do not hide each other. */
class ComparisonReportTest {

    @Test
    void everySeriesHasItsOwnColourLineStyleAndMarkerAndEqualCurvesKeepTheirMarkersApart() {
        Map<String, List<Double>> curves = new LinkedHashMap<>();
        List<Double> same = new ArrayList<>();
        for (int s = 0; s < 150; s++) {
            same.add(3.0 - s / 100.0);
        }
        for (String m : List.of("zero-shot", "full", "head", "lora-qv", "lora-all", "qlora", "ia3", "adapter",
                "prefix", "prompt")) {
            curves.put(m, same);
        }
        XYChart c = ComparisonReport.lossChart("t", "y", curves, Map.of("chance", 0.693));

        Set<String> looks = new HashSet<>();
        for (String m : curves.keySet()) {
            XYSeries s = c.getSeriesMap().get(m);
            assertTrue(looks.add(s.getLineColor() + " " + java.util.Arrays.toString(s.getLineStyle().getDashArray())
                    + " " + s.getMarker().getClass().getSimpleName()), m + " looks like another series");
            assertNotEquals(null, s.getMarker());
        }
        Set<String> markers = new HashSet<>();
        for (String m : curves.keySet()) {
            markers.add(c.getSeriesMap().get(m).getMarker().getClass().getSimpleName());
        }
        assertEquals(curves.size(), markers.size(), "a marker shape per series, so colour is not the only cue");

        // lora-all and qlora: same values, markers at different steps
        Set<Double> loraAllSteps = new HashSet<>();
        for (double x : c.getSeriesMap().get("lora-all").getXData()) {
            loraAllSteps.add(x);
        }
        double[] qloraSteps = c.getSeriesMap().get("qlora").getXData();
        long shared = java.util.Arrays.stream(qloraSteps).filter(loraAllSteps::contains).count();
        assertEquals(2, shared, "only the first and last points coincide");
        assertTrue(c.getSeriesMap().containsKey("chance"), "the reference line is drawn");
    }

    @Test
    void anUntrainedRowShowsADashForTimeAndMemory() {
        HeldOutMetrics m = new HeldOutMetrics(2.0, 0.3, 0.1, 0.1, 0.1);
        MethodResult zeroShot = new MethodResult("zero-shot", 0, 1000, 0, 0, 0, 0, m, 3.0, 0, Double.NaN,
                List.of(2.0), "");
        MethodResult lora = new MethodResult("lora-qv", 40, 1040, 640, 50L << 20, 20L << 20, 12.5, m, 3.0, 2048, 0,
                List.of(2.0), "");
        List<String> lines = ComparisonReport.markdown(List.of(zeroShot, lora)).lines().toList();
        assertTrue(lines.get(2).startsWith("| zero-shot | 0 | 0.00 | – | – | – | – | 2.0000 |"), lines.get(2));
        assertTrue(lines.get(2).endsWith("| – |"), lines.get(2));
        assertTrue(lines.get(3).startsWith("| lora-qv | 40 | 3.85 | 0.00 | 50 | 20 | 12.5 | 2.0000 |"), lines.get(3));
    }
}
