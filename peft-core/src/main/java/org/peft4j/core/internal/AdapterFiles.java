package org.peft4j.core.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Properties;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.AdapterLayer;
import org.peft4j.core.io.DirectoryTransaction;

/**
 * Adapter files in Hugging Face PEFT's layout: {@code adapter_config.json} (sorted keys, two-space
 * indent; peft4j's own keys under {@code "peft4j"}) and {@code adapter_model.safetensors} with
 * tensors named {@code base_model.model.<layer>.<suffix>} in PyTorch orientation ({@code lora_A}
 * {@code [r, in]}, {@code lora_B} {@code [out, r]}, trained dense modules {@code weight [out, in]},
 * {@code bias [out]}; other trained modules under their DL4J parameter key and shape), plus
 * model-level tensors assembled from the column blocks of several layers
 * ({@link AdapterLayer#sharedBlocks()}: prompt learning's {@code prompt_embeddings}).
 *
 * <p>Loading validates the whole directory (JSON types, safetensors structure, base-model
 * fingerprint, tensor names and shapes against the wrapped graph) before any parameter is written.
 *
 * <p>A save writes the files of all adapters of a directory into a staging directory and
 * switches them over with one rename ({@link DirectoryTransaction}), so a save that stops
 * half-way (a crash, a full disk) leaves the previous files or the new ones; readers take each file
 * through {@link #file}. Files can still be mixed by other means (copied by hand, written by an
 * older version), so the config also records the SHA-256 of the weights file it was written with
 * ({@value #WEIGHTS_DIGEST_KEY} under {@code "peft4j"}), and loading refuses a pair that disagrees. The directory's default adapter
 * is written last and lists the other adapters saved with it, with the digests of their weights
 * ({@value #SAVED_ADAPTERS_KEY}): {@link org.peft4j.core.Peft#load} loads exactly those, so the
 * sub-directory of an adapter deleted since an earlier save into the same directory stays on disk
 * but does not come back.
 *
 * <p>This class holds the file names and keys; the parts are {@link AdapterLayout} (which tensor
 * holds which parameter), {@link AdapterWriter}, {@link AdapterReader} and
 * {@link TrainingStateFiles} (what resuming training needs).
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterFiles {

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    public static final String STATE_FILE = "training_state.safetensors";
    /** Key under {@code "peft4j"}: hex SHA-256 of the {@value #WEIGHTS_FILE} written with the config. */
    public static final String WEIGHTS_DIGEST_KEY = "adapter_model_sha256";
    /**
     * Key under {@code "peft4j"} in a directory's default adapter: the other adapters saved with it,
     * name → hex SHA-256 of their weights file.
     */
    public static final String SAVED_ADAPTERS_KEY = "saved_adapters";
    /**
     * Key under {@code "peft4j"} in a checkpoint's default adapter: hex SHA-256 of the
     * {@value #STATE_FILE} written with the adapters.
     */
    public static final String TRAINING_STATE_KEY = "training_state_sha256";
    private AdapterFiles() {
    }

    /** This library's version, as written into adapter files. */
    public static String libraryVersion() {
        try (InputStream in = AdapterFiles.class.getResourceAsStream("/org/peft4j/core/version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /**
     * The file {@code fileName} of the adapter in {@code adapterDir} (a save directory, or the
     * sub-directory of one of its other adapters) as a reader must read it: a save replaces the
     * files of every adapter of a directory as one ({@link DirectoryTransaction}), and after its
     * commit point the new files are read from where they wait until they are moved into place.
     */
    public static Path file(Path adapterDir, String fileName) {
        return DirectoryTransaction.resolveMember(adapterDir, fileName);
    }

    /** The largest {@value #CONFIG_FILE} read: far more than any tuner writes. */
    static final int MAX_CONFIG_BYTES = 16 << 20;

    /**
     * The bytes of an {@value #CONFIG_FILE}, read only up to {@value #MAX_CONFIG_BYTES} (a file
     * replaced by a larger one after a size check cannot make this read more).
     *
     * @throws AdapterFormatException if the file is larger
     */
    public static byte[] readConfig(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] bytes = in.readNBytes(MAX_CONFIG_BYTES + 1);
            if (bytes.length > MAX_CONFIG_BYTES) {
                throw new AdapterFormatException(file + " is larger than " + MAX_CONFIG_BYTES + " bytes, the most an "
                        + "adapter config may have");
            }
            return bytes;
        }
    }

    static String digestValue(Object v, String what) {
        if (!(v instanceof String) || !((String) v).matches("[0-9a-f]{64}")) {
            throw new AdapterFormatException(what + " must be a SHA-256 as 64 lower-case hex digits; got " + v);
        }
        return (String) v;
    }
}
