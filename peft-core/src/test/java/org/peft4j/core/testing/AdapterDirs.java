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
     * SHA-256 in the config, as a writer that made a consistent pair of files would: the load
     * then fails, or not, on the tensors themselves.
     */
    public static void replaceWeights(Path dir, Map<String, SafeTensor> tensors, Map<String, String> metadata)
            throws IOException {
        byte[] bytes = Safetensors.toBytes(tensors, metadata);
        Files.write(dir.resolve("adapter_model.safetensors"), bytes);
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config, StandardCharsets.UTF_8);
        String updated = json.replaceFirst("\"adapter_model_sha256\": \"[0-9a-f]{64}\"",
                "\"adapter_model_sha256\": \"" + sha256(bytes) + "\"");
        if (updated.equals(json)) {
            throw new IllegalStateException(config + " records no weights digest");
        }
        Files.writeString(config, updated, StandardCharsets.UTF_8);
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
     * config, as a checkpoint writer that made that state would: resuming then fails, or not, on
     * the state itself.
     */
    public static void recordTrainingState(Path dir) throws IOException {
        String digest = sha256(Files.readAllBytes(dir.resolve("training_state.safetensors")));
        Path config = dir.resolve("adapter_config.json");
        String json = Files.readString(config, StandardCharsets.UTF_8);
        String updated = json.replaceFirst("\"training_state_sha256\": \"[0-9a-f]{64}\"",
                "\"training_state_sha256\": \"" + digest + "\"");
        if (updated.equals(json)) {
            throw new IllegalStateException(config + " records no training state");
        }
        Files.writeString(config, updated, StandardCharsets.UTF_8);
    }
}
