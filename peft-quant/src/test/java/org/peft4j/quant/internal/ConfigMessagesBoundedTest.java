package org.peft4j.quant.internal;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.spi.ConfigJson;
import org.peft4j.core.spi.PeftJson;

/**
 * Every key of every tuner's real {@code adapter_config.json} (the fuzz seeds), replaced by a huge
 * value of each JSON type: the refusal names the key without echoing the whole value.
 */
class ConfigMessagesBoundedTest {

    private static final String SEEDS = "/org/peft4j/quant/internal/ConfigJsonFuzzTestInputs/adapterConfigParsesOrIsRefused/";
    private static final List<String> TUNERS = List.of("valid-lora", "valid-lora-regex-rslora", "valid-qlora", "valid-ia3",
            "valid-bottleneck", "valid-houlsby", "valid-prefix", "valid-prompt");

    private static Map<String, Object> seed(String name) throws IOException {
        try (InputStream in = ConfigMessagesBoundedTest.class.getResourceAsStream(SEEDS + name)) {
            return PeftJson.parseObject(in.readAllBytes(), name);
        }
    }

    @Test
    void hugeValuesUnderAnyKeyGiveShortMessages() throws IOException {
        List<Object> huge = new ArrayList<>();
        huge.add("s".repeat(5_000));
        List<Object> list = new ArrayList<>();
        for (int i = 0; i < 2_000; i++) {
            list.add(i % 2 == 0 ? "name" + i : i);
        }
        huge.add(list);
        Map<String, Object> object = new LinkedHashMap<>();
        for (int i = 0; i < 2_000; i++) {
            object.put("k" + i, i);
        }
        huge.add(object);
        huge.add(12345.5);
        int checked = 0;
        for (String tuner : TUNERS) {
            Map<String, Object> json = seed(tuner);
            for (String key : json.keySet()) {
                for (Object value : huge) {
                    Map<String, Object> edited = new LinkedHashMap<>(json);
                    edited.put(key, value);
                    byte[] bytes = PeftJson.write(edited).getBytes(StandardCharsets.UTF_8);
                    try {
                        ConfigJson.parseAdapterConfig(bytes, "adapter_config.json");
                    } catch (AdapterFormatException e) {
                        String m = e.getMessage();
                        assertTrue(m.length() <= 1500, () -> tuner + " \"" + key + "\": " + m.length() + " characters: "
                                + m.substring(0, 1500));
                        checked++;
                    }
                }
            }
        }
        assertTrue(checked > 100, checked + " refusals checked");
    }
}
