package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.core.spi.PeftJson;

/**
 * Coverage-guided fuzzing of the JSON that configures an adapter: {@code adapter_config.json}
 * (parsed by {@link ConfigJson#parseAdapterConfig} with every tuner's factory on this module's
 * classpath: LoRA, IA3, bottleneck adapters, prefix and prompt tuning) and the quant state of a
 * 4-bit tensor ({@link QuantStateJson}). In a normal build both run in regression mode on the
 * seeds in {@code src/test/resources/org/peft4j/quant/internal/ConfigJsonFuzzTestInputs/}
 * (every tuner's real output and broken variants); {@code mvn -pl peft-quant -am -Pfuzz test}
 * fuzzes them for real.
 */
class ConfigJsonFuzzTest {

    /** Messages echo file content only in bounded pieces. */
    private static final int MAX_MESSAGE_CHARS = 4000;

    private static void assertBounded(AdapterFormatException e) {
        assertTrue(e.getMessage().length() <= MAX_MESSAGE_CHARS,
                () -> e.getMessage().length() + " characters: " + e.getMessage().substring(0, MAX_MESSAGE_CHARS));
    }

    /**
     * Any bytes give a config or an {@link AdapterFormatException} with a bounded message; any other
     * throwable is a finding. A config that parses writes JSON that parses back to an equal config.
     */
    @FuzzTest(maxDuration = "60s")
    void adapterConfigParsesOrIsRefused(byte[] data) {
        PeftConfig config;
        try {
            config = ConfigJson.parseAdapterConfig(data, "adapter_config.json").config();
        } catch (AdapterFormatException e) {
            assertBounded(e);
            return;
        }
        byte[] again = PeftJson.write(config.toAdapterConfig()).getBytes(StandardCharsets.UTF_8);
        assertEquals(config, ConfigJson.parseAdapterConfig(again, "written again").config());
    }

    /**
     * Any bytes give a quant state or an {@link AdapterFormatException} with a bounded message. A
     * float32 state that parses encodes to JSON that decodes to the same state.
     */
    @FuzzTest(maxDuration = "60s")
    void quantStateParsesOrIsRefused(byte[] data) {
        QuantStateJson.State s;
        try {
            s = QuantStateJson.decode(data, "w.quant_state.bitsandbytes__nf4");
        } catch (AdapterFormatException e) {
            assertBounded(e);
            return;
        }
        if (!"float32".equals(s.dtype()) || !"float32".equals(s.nestedDtype())) {
            return; // encode writes float32 states only
        }
        QuantStateJson.State back = QuantStateJson.decode(QuantStateJson.encode(s.type(), s.blockSize(), s.shape(),
                s.nested(), s.nestedBlockSize(), s.offset()), "written again");
        assertEquals(s.type(), back.type());
        assertEquals(s.blockSize(), back.blockSize());
        assertArrayEquals(s.shape(), back.shape());
        assertEquals(s.nested(), back.nested());
        assertEquals(s.nestedBlockSize(), back.nestedBlockSize());
        assertEquals(Float.floatToIntBits(s.offset()), Float.floatToIntBits(back.offset()));
    }
}
