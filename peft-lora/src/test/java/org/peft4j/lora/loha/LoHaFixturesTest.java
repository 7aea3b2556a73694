package org.peft4j.lora.loha;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.peft4j.lora.testing.FamilyCase;
import org.peft4j.lora.testing.FixtureChecks;
import org.peft4j.lora.testing.PeftFiles;

/**
 * LoHa against the independent numpy reference of {@code family/loha/*} (written from Hugging Face
 * PEFT v0.20.0's formulas by {@code family_reference.py}): PEFT-written adapter directories for a
 * dense layer and a 3×3 convolution (flat and effective form) load onto graphs built from the
 * reference base weights, and the forward output, {@code ΔW} and merged
 * weight equal the reference's; saving it again writes PEFT's tensors bit for bit and only keys
 * PEFT 0.13's {@code LoHaConfig} has, with PEFT's values.
 */
class LoHaFixturesTest {

    /** Provenance keys (PEFT's version, hub revision, custom model class) and exclude_modules, written only when set. */
    static final Set<String> NOT_WRITTEN = Set.of("auto_mapping", "exclude_modules", "peft_version", "revision");

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"loha/dense", "loha/conv2d", "loha/conv2d_effective"})
    void outputDeltaWeightAndMergedWeightEqualTheReference(String name) throws IOException {
        FixtureChecks.matchesReference(FamilyCase.of(name));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"loha/dense", "loha/conv2d", "loha/conv2d_effective"})
    void savingTheLoadedAdapterWritesPeftsTensorsAndKeys(String name, @TempDir Path tmp) throws IOException {
        FamilyCase c = FamilyCase.of(name);
        FixtureChecks.savedAdapterIsPefts(c, c.base(DataType.FLOAT), tmp,
                PeftFiles.fieldList("/peft-0.13-loha-config-fields.txt"), NOT_WRITTEN);
    }
}
