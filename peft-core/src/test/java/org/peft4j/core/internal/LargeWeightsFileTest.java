package org.peft4j.core.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.learning.config.Adam;
import org.peft4j.core.Peft;
import org.peft4j.core.ia3.Ia3Config;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.testing.TinyGraphs;

/**
 * Memory for a load follows the adapter, not the weights file: in a JVM with a 256 MB heap, a
 * 300 MB weights file (the adapter's tensors plus one unknown 300 MB tensor) and a 1.9 GB file
 * whose header says the data ends at byte 64 are both refused with their own message, and
 * neither gives {@link OutOfMemoryError} (both once did: the whole file was read into one array
 * before anything was checked). The large files are sparse: no disk is written for their data.
 */
class LargeWeightsFileTest {

    static ComputationGraph base() {
        return TinyGraphs.mlp(DataType.FLOAT, new Adam(1e-2), 42, 8, 16, 4);
    }

    /** An adapter directory whose weights file lists the saved tensors, then {@code extra} bytes of one more. */
    private static Path withExtraTensor(Path dir, long extraFloats, long fileSize) throws Exception {
        Peft.wrap(base(), Ia3Config.builder().targetModules("dense1").build()).saveAdapter(dir);
        Path weights = dir.resolve("adapter_model.safetensors");
        Map<String, SafeTensor> tensors = Safetensors.read(weights).tensors();
        StringBuilder header = new StringBuilder("{");
        List<byte[]> data = new ArrayList<>();
        long offset = 0;
        for (Map.Entry<String, SafeTensor> e : tensors.entrySet()) {
            byte[] b = e.getValue().rawBytes();
            header.append(header.length() > 1 ? "," : "").append('"').append(e.getKey()).append("\":{\"dtype\":\"F32\","
                    + "\"shape\":").append(java.util.Arrays.toString(e.getValue().shape()).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(offset).append(',').append(offset + b.length).append("]}");
            offset += b.length;
            data.add(b);
        }
        if (extraFloats > 0) {
            header.append(",\"base_model.model.extra\":{\"dtype\":\"F32\",\"shape\":[").append(extraFloats)
                    .append("],\"data_offsets\":[").append(offset).append(',').append(offset + 4 * extraFloats).append("]}");
        }
        byte[] json = header.append('}').toString().getBytes(StandardCharsets.UTF_8);
        try (RandomAccessFile f = new RandomAccessFile(weights.toFile(), "rw")) {
            f.setLength(0);
            f.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length).array());
            f.write(json);
            for (byte[] b : data) {
                f.write(b);
            }
            f.setLength(fileSize > 0 ? fileSize : f.length() + 4 * extraFloats);
        }
        return dir;
    }

    @Test
    void largeWeightsFilesAreRefusedUnderASmallHeapWithoutRunningOutOfMemory(@TempDir Path tmp) throws Exception {
        Path extra = withExtraTensor(tmp.resolve("extra"), 75_000_000L, 0);
        assertTrue(Files.size(extra.resolve("adapter_model.safetensors")) > 300_000_000L);
        Path huge = withExtraTensor(tmp.resolve("huge"), 0, 1_900_000_000L);

        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "-Xmx256m", "-cp", System.getProperty("java.class.path"),
                LargeWeightsFileChild.class.getName(), extra.toString(), huge.toString())
                .redirectErrorStream(true).start();
        List<String> lines = new ArrayList<>();
        try (var out = p.inputReader()) {
            for (String line = out.readLine(); line != null; line = out.readLine()) {
                if (line.startsWith("REFUSED") || line.startsWith("LOADED") || line.startsWith("OUT OF MEMORY")) {
                    lines.add(line);
                }
            }
        }
        assertTrue(p.waitFor(10, TimeUnit.MINUTES), "child JVM did not finish");
        assertEquals(0, p.exitValue(), () -> "child JVM exit " + p.exitValue() + ": " + lines);
        assertEquals(2, lines.size(), lines::toString);
        assertTrue(lines.get(0).startsWith("REFUSED IncompatibleAdapterException: the adapter in " + extra
                + " does not fit the base model: adapter_model.safetensors: 1 unknown tensors [base_model.model.extra]"),
                lines.get(0));
        assertTrue(lines.get(1).startsWith("REFUSED AdapterFormatException: " + huge.resolve("adapter_model.safetensors")
                + ": 1899999"), lines.get(1));
        assertTrue(lines.get(1).contains(" trailing bytes after the last tensor: tensors end at byte 64 of the data "
                + "buffer"), lines.get(1));
    }
}
