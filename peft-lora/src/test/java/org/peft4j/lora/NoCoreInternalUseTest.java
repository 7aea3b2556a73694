package org.peft4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.peft4j.core.testing.SourceImports;

/** peft-lora builds on core's public API and its documented {@code spi} package, never on core's {@code .internal}. */
class NoCoreInternalUseTest {

    @Test
    void mainSourcesUseNoCoreInternalPackage() throws Exception {
        List<String> uses = SourceImports.usesOf(Path.of("src", "main", "java"), "org.peft4j.core.internal");
        assertEquals(List.of(), uses, "peft-lora must use org.peft4j.core.spi (or public API) instead");
    }
}
