package org.peft4j.core.rlhf.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;

/**
 * The pairwise and PPO math against independent numpy references
 * ({@code src/test/python/preference_reference.py}): losses from the papers' definitions, gradients
 * as numpy central differences of those losses (not a second copy of the Java derivatives), GAE as
 * the explicit discounted sum rather than the backward recursion.
 */
class PreferenceMathTest {

    private static final double GRAD_TOL = 1e-7;
    private static JsonNode fixture;

    @BeforeAll
    static void read() throws IOException {
        try (InputStream in = PreferenceMathTest.class.getResourceAsStream(
                "/org/peft4j/core/rlhf/preference_reference.json")) {
            fixture = new ObjectMapper().readTree(in);
        }
    }

    private static double[] arr(JsonNode n, String key) {
        JsonNode a = n.get(key);
        double[] v = new double[a.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = a.get(i).asDouble();
        }
        return v;
    }

    @Test
    void dpoSigmoidLossWithLabelSmoothingMatchesNumpy() {
        assertEquals(3, fixture.get("dpo").size());
        for (JsonNode c : fixture.get("dpo")) {
            PreferenceMath.PairLoss l = PreferenceMath.dpo(arr(c, "policyChosen"), arr(c, "policyRejected"),
                    arr(c, "referenceChosen"), arr(c, "referenceRejected"), c.get("beta").asDouble(),
                    c.get("labelSmoothing").asDouble());
            assertEquals(c.get("loss").asDouble(), l.loss(), 1e-12);
            assertArrayEquals(arr(c, "dChosen"), l.dChosen(), GRAD_TOL);
            assertArrayEquals(arr(c, "dRejected"), l.dRejected(), GRAD_TOL);
            assertArrayEquals(arr(c, "chosenRewards"), l.chosenRewards(), 1e-12);
            assertArrayEquals(arr(c, "rejectedRewards"), l.rejectedRewards(), 1e-12);
            assertEquals(c.get("accuracy").asDouble(), l.accuracy(), 0);
            assertEquals(c.get("margin").asDouble(), l.margin(), 1e-12);
        }
    }

    @Test
    void bradleyTerryLossWithCentringMatchesNumpy() {
        for (JsonNode c : fixture.get("bradleyTerry")) {
            PreferenceMath.PairLoss l = PreferenceMath.bradleyTerry(arr(c, "chosen"), arr(c, "rejected"),
                    c.get("center").asDouble());
            assertEquals(c.get("loss").asDouble(), l.loss(), 1e-12);
            assertArrayEquals(arr(c, "dChosen"), l.dChosen(), GRAD_TOL);
            assertArrayEquals(arr(c, "dRejected"), l.dRejected(), GRAD_TOL);
            assertEquals(c.get("accuracy").asDouble(), l.accuracy(), 0);
            assertEquals(c.get("margin").asDouble(), l.margin(), 1e-12);
        }
    }

    @Test
    void clippedPolicyLossMatchesNumpyOnClippedAndUnclippedTokens() {
        for (JsonNode c : fixture.get("policy")) {
            PpoMath.Clipped l = PpoMath.clippedPolicyLoss(arr(c, "logProbs"), arr(c, "oldLogProbs"),
                    arr(c, "advantages"), c.get("clip").asDouble());
            double frac = c.get("clipFraction").asDouble();
            assertTrue(frac > 0 && frac < 1, "the fixture must mix clipped and unclipped tokens");
            assertEquals(c.get("loss").asDouble(), l.loss(), 1e-12);
            assertArrayEquals(arr(c, "grad"), l.grad(), GRAD_TOL);
            assertEquals(frac, l.clipFraction(), 0);
        }
    }

    @Test
    void clippedValueLossMatchesNumpyOnClippedAndUnclippedTokens() {
        for (JsonNode c : fixture.get("value")) {
            PpoMath.Clipped l = PpoMath.clippedValueLoss(arr(c, "values"), arr(c, "oldValues"), arr(c, "returns"),
                    c.get("clip").asDouble());
            double frac = c.get("clipFraction").asDouble();
            assertTrue(frac > 0 && frac < 1, "the fixture must mix clipped and unclipped tokens");
            assertEquals(c.get("loss").asDouble(), l.loss(), 1e-12);
            assertArrayEquals(arr(c, "grad"), l.grad(), GRAD_TOL);
            assertEquals(frac, l.clipFraction(), 0);
        }
    }

    @Test
    void gaeRecursionEqualsTheExplicitDiscountedSum() {
        for (JsonNode c : fixture.get("gae")) {
            double[] a = PpoMath.gae(arr(c, "rewards"), arr(c, "values"), c.get("gamma").asDouble(),
                    c.get("lambda").asDouble());
            assertArrayEquals(arr(c, "advantages"), a, 1e-12);
        }
    }

    @Test
    void whiteningUsesTheUnbiasedVariance() {
        for (JsonNode c : fixture.get("whiten")) {
            double[] x = arr(c, "x");
            PpoMath.whiten(x);
            assertArrayEquals(arr(c, "whitened"), x, 1e-12);
        }
    }

    @Test
    void adaptiveKlCoefficientFollowsZieglerEtAl() {
        for (JsonNode c : fixture.get("adaptiveKl")) {
            assertEquals(c.get("next").asDouble(), PpoMath.adaptKlCoefficient(c.get("beta").asDouble(),
                    c.get("kl").asDouble(), c.get("target").asDouble(), c.get("horizon").asDouble(),
                    c.get("n").asInt()), 1e-15);
        }
    }

    @Test
    void logSigmoidStaysFiniteFarFromZero() {
        assertEquals(-1000.0, PreferenceMath.logSigmoid(-1000), 1e-12);
        assertEquals(0.0, PreferenceMath.logSigmoid(1000), 0);
        assertEquals(-Math.log(2), PreferenceMath.logSigmoid(0), 0);
    }
}
