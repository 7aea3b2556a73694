package org.peft4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.peft4j.core.testing.SourceImports;

/** peft-quant builds on core's public API and its documented {@code spi} package, never on core's {@code .internal}. */
class NoCoreInternalUseTest {

    @Test
    void mainSourcesUseNoCoreInternalPackage() throws Exception {
        List<String> uses = SourceImports.usesOf(Path.of("src", "main", "java"), "org.peft4j.core.internal");
        assertEquals(List.of(), uses, "peft-quant must use org.peft4j.core.spi (or public API) instead");
    }
}
