package org.peft4j.core.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.peft4j.core.AdapterFormatException;

/**
 * The key table of a tuner's files: honoured and ignored keys pass with any value, a refused key only
 * with a value under which it changes nothing (null or the listed ones, numbers by value), an unknown key
 * only when it is off (null, false, "", [] or {}), and every refusal names the key, its value and why.
 */
class KeyPolicyTest {

    private static final KeyPolicy POLICY = KeyPolicy.builder()
            .honoured("r").honoured("rank_pattern", KeyPolicy.Role.MODULE_PATTERNS)
            .ignored("fan_in_fan_out")
            .refusedUnless("lora_bias", "lora_B carries a bias", false)
            .refusedUnless("group_size", "inputs are pooled", 16)
            .build();

    private static Map<String, Object> json(Object... kv) {
        Map<String, Object> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    private static String refusal(Map<String, Object> json) {
        return assertThrows(AdapterFormatException.class, () -> POLICY.check(json)).getMessage();
    }

    @Test
    void everyPeftConfigsCommonKeysAreListed() {
        assertEquals(KeyPolicy.Treatment.HONOURED, POLICY.treatment("peft_type"));
        assertEquals(KeyPolicy.Treatment.HONOURED, POLICY.treatment("task_type"));
        for (String k : List.of("peft_version", "auto_mapping", "base_model_name_or_path", "revision", "inference_mode")) {
            assertEquals(KeyPolicy.Treatment.IGNORED, POLICY.treatment(k), k);
        }
        assertNull(POLICY.treatment("some_future_option"));
        assertEquals(Set.of("rank_pattern"), POLICY.keys(KeyPolicy.Role.MODULE_PATTERNS));
        assertEquals(KeyPolicy.Role.PLAIN, POLICY.role("r"));
    }

    @Test
    void honouredAndIgnoredKeysPassWithAnyValue() {
        POLICY.check(json("r", "not even a number", "fan_in_fan_out", true, "inference_mode", "yes",
                "base_model_name_or_path", "/home/someone/model", "peft_version", "0.20.0"));
    }

    @Test
    void aRefusedKeyPassesOnlyWithAValueThatChangesNothing() {
        POLICY.check(json("lora_bias", false, "group_size", 16.0));
        POLICY.check(json("lora_bias", null, "group_size", null));
        assertEquals("\"lora_bias\" = true is not supported: lora_B carries a bias; peft4j accepts this key only as null "
                + "or false", refusal(json("lora_bias", true)));
        assertEquals("\"group_size\" = 32 is not supported: inputs are pooled; peft4j accepts this key only as null or 16",
                refusal(json("group_size", 32)));
    }

    @Test
    void anUnknownKeyPassesOnlyWhenOff() {
        POLICY.check(json("a", null, "b", false, "c", "", "d", List.of(), "e", Map.of()));
        assertEquals("\"some_future_scaling\" = 2.0 is not a key peft4j knows for this peft_type (a newer PEFT or another "
                + "tool wrote it); an unknown key is accepted only when it is null, false, \"\", [] or {}, since any other "
                + "value may change what the adapter computes", refusal(json("some_future_scaling", 2.0)));
        String nested = refusal(json("x_config", Map.of("k", 1)));
        assertEquals("\"x_config\" = { \"k\": 1 } is not a key", nested.substring(0, nested.indexOf(" peft4j knows")));
    }

    @Test
    void theFirstOffendingKeyInSortedOrderIsNamedAndLongValuesAreCut() {
        String m = refusal(json("zz", true, "aa", "x".repeat(500)));
        assertEquals("\"aa\" = \"" + "x".repeat(196) + "...", m.substring(0, m.indexOf(" is not a key")));
    }

    @Test
    void aFactoryWithoutATableChecksNothingAndKeysAreListedOnce() {
        KeyPolicy.none().check(json("anything", 42));
        assertEquals(false, KeyPolicy.none().checksKeys());
        assertThrows(IllegalStateException.class, () -> KeyPolicy.builder().honoured("r").ignored("r"));
        assertThrows(IllegalStateException.class, () -> KeyPolicy.builder().ignored("peft_version"),
                "the common keys are listed already");
        assertThrows(NullPointerException.class, () -> KeyPolicy.builder().refusedUnless("k", "why", (Object) null));
    }
}
