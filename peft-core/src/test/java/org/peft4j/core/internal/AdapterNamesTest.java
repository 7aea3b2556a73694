package org.peft4j.core.internal;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class AdapterNamesTest {

    private static String refused(String name, List<String> existing) {
        return assertThrows(IllegalArgumentException.class, () -> AdapterNames.checkNew(name, existing),
                name).getMessage();
    }

    @Test
    void plainNamesAreAccepted() {
        for (String ok : List.of("a", "second", "lora-r8_v2", "v1.5", "console", "nullable", "com10", "lpt", "auxiliary",
                "x".repeat(100))) {
            assertDoesNotThrow(() -> AdapterNames.checkNew(ok, List.of("default")), ok);
        }
    }

    @Test
    void windowsDeviceNamesAreRefusedInAnyCaseWithOrWithoutExtension() {
        for (String device : List.of("con", "CON", "Nul", "aux", "prn", "com1", "COM9", "com0", "lpt1", "LPT9",
                "nul.txt", "con.tar.gz", "Aux.json")) {
            String m = refused(device, List.of());
            assertTrue(m.contains("is a Windows device name"), m);
        }
    }

    @Test
    void trailingDotsAndSpacesAreRefused() {
        assertTrue(refused("adapter.", List.of()).contains("ends with '.'"));
        assertTrue(refused("a..", List.of()).contains("ends with '.'"));
        assertTrue(refused("adapter ", List.of()).contains("must be 1-100 letters"));
    }

    @Test
    void namesDifferingOnlyInCaseFromAnExistingAdapterAreRefused() {
        String m = refused("Mixed", List.of("default", "mixed"));
        assertTrue(m.contains("differs from the existing adapter \"mixed\" only in case"), m);
        assertTrue(refused("DEFAULT", List.of("default")).contains("only in case"));
        assertTrue(refused("mixed", List.of("default", "mixed")).contains("exists already"));
    }

    @Test
    void pathLikeHiddenAndFileNamesAreRefused() {
        for (String bad : List.of("", "../x", "a/b", "a\\b", ".hidden", "-x", "é", "x".repeat(101))) {
            assertTrue(refused(bad, List.of()).contains("must be 1-100 letters"), bad);
        }
        assertTrue(refused("Adapter_Config.json", List.of()).contains("differs only in case from adapter_config.json, a "
                + "file saveAdapter and saveCheckpoint write"));
        assertTrue(refused("training_state.safetensors", List.of()).contains("is the name of a file"));
        assertThrows(NullPointerException.class, () -> AdapterNames.checkNew(null, List.of()));
    }
}
