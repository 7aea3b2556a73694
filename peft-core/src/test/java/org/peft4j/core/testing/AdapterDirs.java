package org.peft4j.core.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;

/** Edits of saved adapter directories for tests that need a file another writer could have made. */
public final class AdapterDirs {
    private AdapterDirs() {
    }

    /**
     * Replaces the weights file in {@code dir} with {@code tensors} and records the new file's
     * SHA-256 in peft4j's side file, as a writer that made a consistent set of files would: the
     * load then fails, or not, on the tensors themselves.
     */
    public static void replaceWeights(Path dir, Map<String, SafeTensor> tensors, Map<String, String> metadata)
            throws IOException {
        byte[] bytes = Safetensors.toBytes(tensors, metadata);
        Files.write(dir.resolve("adapter_model.safetensors"), bytes);
        record(dir, "adapter_model_sha256", sha256(bytes));
    }

    /**
     * Writes {@code json} as {@code dir}'s config and records its SHA-256 in peft4j's side file, as
     * a writer that made that config would (the side file keeps describing the adapter).
     */
    public static void replaceConfig(Path dir, String json) throws IOException {
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        Files.write(dir.resolve("adapter_config.json"), bytes);
        record(dir, "adapter_config_sha256", sha256(bytes));
    }

    /** Sets the 64-digit digest {@code key} of {@code dir}'s side file to {@code digest}. */
    private static void record(Path dir, String key, String digest) throws IOException {
        Path side = dir.resolve("peft4j.json");
        String json = Files.readString(side, StandardCharsets.UTF_8);
        String updated = json.replaceFirst("\"" + key + "\": \"[0-9a-f]{64}\"", "\"" + key + "\": \"" + digest + "\"");
        if (updated.equals(json)) {
            throw new IllegalStateException(side + " records no " + key);
        }
        Files.writeString(side, updated, StandardCharsets.UTF_8);
    }

    /** peft4j's side file of the adapter in {@code dir}, parsed. */
    public static Map<String, Object> sideFile(Path dir) throws IOException {
        return org.peft4j.core.spi.PeftJson.parseObject(Files.readAllBytes(dir.resolve("peft4j.json")), "peft4j.json");
    }

    /** The tuner's own records in the side file of the adapter in {@code dir} (what its config wrote under "peft4j"). */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> tunerRecords(Path dir) throws IOException {
        return (Map<String, Object>) sideFile(dir).getOrDefault("config", Map.of());
    }

    /** Hex SHA-256 of {@code bytes}. */
    public static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Records the SHA-256 of the training state file now in {@code dir} in the default adapter's
     * side file, as a checkpoint writer that made that state would: resuming then fails, or not, on
     * the state itself.
     */
    public static void recordTrainingState(Path dir) throws IOException {
        record(dir, "training_state_sha256", sha256(Files.readAllBytes(dir.resolve("training_state.safetensors"))));
    }
}
