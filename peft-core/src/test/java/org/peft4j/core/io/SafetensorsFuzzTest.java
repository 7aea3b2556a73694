package org.peft4j.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import org.peft4j.core.AdapterFormatException;

/**
 * Coverage-guided fuzzing of the reader with Jazzer. In a normal build this runs in regression
 * mode on the seeds in {@code src/test/resources/org/peft4j/core/io/SafetensorsFuzzTestInputs/}
 * (valid files and broken ones); {@code ./mvnw -pl peft-core -Pfuzz test} fuzzes it for real.
 */
class SafetensorsFuzzTest {

    /**
     * Any bytes either parse or fail with {@link AdapterFormatException}; any other throwable
     * (including OutOfMemoryError and StackOverflowError) is a finding. A file that parses must
     * also survive being written and read again with the same tensors.
     */
    @FuzzTest(maxDuration = "60s")
    void fromBytesThrowsOnlyAdapterFormatException(byte[] data) {
        SafetensorsFile file;
        try {
            file = Safetensors.fromBytes(data);
        } catch (AdapterFormatException expected) {
            return;
        }
        SafetensorsFile again = Safetensors.fromBytes(
                Safetensors.toBytes(file.tensors(), file.metadata()));
        assertEquals(file.tensors(), again.tensors());
    }
}
