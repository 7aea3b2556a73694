package org.peft4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.testing.TinyGraphs;

/** Adapter names and save directories that would misbehave on another file system or escape the directory. */
class AdapterNamesOnModelTest {

    private static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    private static PeftConfig config() {
        return Ia3Config.builder().targetModules("dense1").build();
    }

    @Test
    void namesThatBreakOnWindowsOrCaseInsensitiveFileSystemsAreRefused() {
        PeftModel peft = Peft.wrap(base(), config());
        peft.addAdapter("mixed", config());
        for (String bad : List.of("con", "NUL", "aux.v2", "com1", "lpt9", "trailing.", "Mixed", "DEFAULT")) {
            assertThrows(IllegalArgumentException.class, () -> peft.addAdapter(bad, config()), bad);
        }
        assertEquals(List.of("default", "mixed"), List.copyOf(peft.adapterNames()));
    }

    @Test
    void aSymlinkPlantedAtAnAdapterDirectoryIsNotFollowed(@TempDir Path tmp) throws Exception {
        PeftModel peft = Peft.wrap(base(), config());
        peft.addAdapter("second", config());
        Path dir = Files.createDirectories(tmp.resolve("save"));
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Files.createSymbolicLink(dir.resolve("second"), outside);

        FileSystemException e = assertThrows(FileSystemException.class, () -> peft.saveAdapter(dir));
        assertTrue(e.getMessage().contains(dir.resolve("second") + ": is a symbolic link"), e.getMessage());
        try (Stream<Path> s = Files.list(outside)) {
            assertEquals(0, s.count(), "nothing written through the link");
        }
        assertTrue(Files.isSymbolicLink(dir.resolve("second")), "the link is left as it was");
        assertFalse(Files.exists(dir.resolve("adapter_config.json")), "the save stopped before the default adapter");
    }

    @Test
    void aSymlinkPlantedAtAFileIsReplacedNotWrittenThrough(@TempDir Path tmp) throws Exception {
        PeftModel peft = Peft.wrap(base(), config());
        Path dir = Files.createDirectories(tmp.resolve("save"));
        Path victim = Files.write(tmp.resolve("victim"), new byte[] {1, 2, 3});
        Files.createSymbolicLink(dir.resolve("adapter_model.safetensors"), victim);

        peft.saveAdapter(dir);
        assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(victim));
        assertFalse(Files.isSymbolicLink(dir.resolve("adapter_model.safetensors")));
        Peft.load(base(), dir);
    }
}
