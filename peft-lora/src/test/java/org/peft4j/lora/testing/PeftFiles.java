package org.peft4j.lora.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;

/**
 * Checks that an adapter directory peft4j wrote is what Hugging Face PEFT writes: the same tensors
 * (names, shapes, bytes) as a PEFT-written directory, and only config keys PEFT knows.
 *
 * <p>Thread-safety: stateless.
 */
public final class PeftFiles {

    private PeftFiles() {
    }

    /** Every tensor of {@code expected} is in {@code dir}'s weights file with its shape, dtype and bytes, and no other. */
    public static void assertSameTensors(Map<String, SafeTensor> expected, Path dir) throws IOException {
        Map<String, SafeTensor> written = Safetensors.read(dir.resolve("adapter_model.safetensors")).tensors();
        assertEquals(new TreeSet<>(expected.keySet()), new TreeSet<>(written.keySet()), "tensor names");
        for (Map.Entry<String, SafeTensor> e : expected.entrySet()) {
            SafeTensor w = written.get(e.getKey());
            assertArrayEquals(e.getValue().shape(), w.shape(), e.getKey() + ": shape");
            assertEquals(e.getValue().dtype(), w.dtype(), e.getKey() + ": dtype");
            assertArrayEquals(e.getValue().rawBytes(), w.rawBytes(), e.getKey() + ": values");
        }
    }

    /**
     * The keys of a PEFT config class at a release, from a field list written by
     * {@code peft-core/src/test/python/peft_config_fields.py} (a test resource of this module).
     */
    public static Set<String> fieldList(String resource) throws IOException {
        Set<String> out = new TreeSet<>();
        try (InputStream in = PeftFiles.class.getResourceAsStream(resource)) {
            assertTrue(in != null, "missing resource " + resource);
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (!line.isBlank() && !line.startsWith("#")) {
                    out.add(line.split("\t")[0]);
                }
            }
        }
        return out;
    }

    /**
     * The keys of {@code written} (a config peft4j wrote) other than peft4j's own extension object
     * must all be in {@code peftKeys}; returns them.
     */
    public static Set<String> assertPeftKeysOnly(Map<String, Object> written, Set<String> peftKeys) {
        Set<String> keys = new TreeSet<>(written.keySet());
        keys.remove("peft4j");
        Set<String> unknown = new TreeSet<>(keys);
        unknown.removeAll(peftKeys);
        assertTrue(unknown.isEmpty(), "keys PEFT does not know: " + unknown);
        return keys;
    }
}
