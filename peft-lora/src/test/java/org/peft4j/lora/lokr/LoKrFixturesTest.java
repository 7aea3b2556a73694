package org.peft4j.lora.lokr;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.ObjectMapper;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FixtureChecks;
import org.peft4j.lora.testing.PeftFiles;

/**
 * LoKr against the independent numpy reference of {@code family/lokr/*} (written from Hugging Face
 * PEFT v0.20.0's formulas by {@code family_reference.py}): the split of sizes equals PEFT's
 * {@code factorization} on its table, PEFT-written adapters with a full and a low-rank {@code w2},
 * with both factors low-rank, on a 2D convolution and on a 1D
 * convolution with a full {@code w2} (PEFT's other element order), load onto graphs built from the reference base weights with the
 * reference's output, {@code ΔW} and merged weight, and save back as PEFT wrote them.
 */
class LoKrFixturesTest {

    /**
     * Provenance keys, exclude_modules (written only when set), and rank_dropout_scale (written only
     * when true: PEFT 0.13 refuses the key).
     */
    static final Set<String> NOT_WRITTEN = Set.of("auto_mapping", "exclude_modules", "peft_version", "rank_dropout_scale",
            "revision");

    @Test
    void factorizationEqualsPeftsOnItsTable() throws IOException {
        JsonNode table;
        try (InputStream in = getClass().getResourceAsStream("/family/lokr/factorization.json")) {
            table = new ObjectMapper().readTree(in);
        }
        assertEquals(33, table.get("rows").size());
        for (JsonNode row : table.get("rows")) {
            long dim = row.get("dimension").asLong();
            long factor = row.get("factor").asLong();
            assertArrayEquals(new long[] {row.get("m").asLong(), row.get("n").asLong()},
                    KroneckerProduct.factorization(dim, factor), "factorization(" + dim + ", " + factor + ")");
        }
    }

    @Test
    void factorsOtherThanMinusOneOrPositiveSplitNothingAsInPeft() {
        assertArrayEquals(new long[] {1, 12}, KroneckerProduct.factorization(12, 0));
        assertArrayEquals(new long[] {1, 12}, KroneckerProduct.factorization(12, -3));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"lokr/dense", "lokr/dense_decompose_both", "lokr/dense_full", "lokr/conv2d", "lokr/conv1d_full_w2"})
    void outputDeltaWeightAndMergedWeightEqualTheReference(String name) throws IOException {
        FixtureChecks.matchesReference(FamilyCase.of(name));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"lokr/dense", "lokr/dense_decompose_both", "lokr/dense_full", "lokr/conv2d", "lokr/conv1d_full_w2"})
    void savingTheLoadedAdapterWritesPeftsTensorsAndKeys(String name, @TempDir Path tmp) throws IOException {
        FamilyCase c = FamilyCase.of(name);
        FixtureChecks.savedAdapterIsPefts(c, c.base(DataType.FLOAT), tmp,
                PeftFiles.fieldList("/peft-0.13-lokr-config-fields.txt"), NOT_WRITTEN);
    }
}
