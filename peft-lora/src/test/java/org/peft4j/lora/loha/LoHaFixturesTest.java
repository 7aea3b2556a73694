package org.peft4j.lora.loha;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FixtureChecks;
import org.peft4j.lora.testing.PeftFiles;

/**
 * LoHa against the independent numpy reference of {@code family/loha/*} (written from Hugging Face
 * PEFT v0.20.0's formulas by {@code family_reference.py}): a PEFT-written adapter directory loads
 * onto a graph built from the reference base weights, and the forward output, {@code ΔW} and merged
 * weight equal the reference's; saving it again writes PEFT's tensors bit for bit and only keys
 * PEFT 0.13's {@code LoHaConfig} has, with PEFT's values.
 */
class LoHaFixturesTest {

    /** Provenance keys (PEFT's version, hub revision, custom model class) and exclude_modules, written only when set. */
    static final Set<String> NOT_WRITTEN = Set.of("auto_mapping", "exclude_modules", "peft_version", "revision");

    @Test
    void denseOutputDeltaWeightAndMergedWeightEqualTheReference() throws IOException {
        FixtureChecks.denseMatchesReference(FamilyCase.of("loha/dense"));
    }

    @Test
    void savingTheLoadedAdapterWritesPeftsTensorsAndKeys(@TempDir Path tmp) throws IOException {
        FamilyCase c = FamilyCase.of("loha/dense");
        FixtureChecks.savedAdapterIsPefts(c, c.denseBase(DataType.FLOAT), tmp,
                PeftFiles.fieldList("/peft-0.13-loha-config-fields.txt"), NOT_WRITTEN);
    }
}
