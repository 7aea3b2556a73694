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
 * Adapter files in Hugging Face PEFT's layout: {@code adapter_config.json} (PEFT's keys only, sorted,
 * two-space indent) and {@code adapter_model.safetensors} with tensors named
 * {@code base_model.model.<layer>.<suffix>} in PyTorch orientation ({@code lora_A}
 * {@code [r, in]}, {@code lora_B} {@code [out, r]}, trained modules under PyTorch's parameter
 * names: dense {@code weight [out, in]} and {@code bias [out]}, embedding and normalization
 * {@code weight} and {@code bias}), plus model-level tensors assembled from the column blocks of
 * several layers ({@link AdapterLayer#sharedBlocks()}: prompt learning's {@code prompt_embeddings}).
 * peft4j's own records sit beside them in {@value #SIDE_FILE} ({@link AdapterSidecar}), which PEFT
 * never reads: PEFT 0.13 refuses a config holding a key its config class lacks.
 *
 * <p>Loading validates the whole directory (JSON types, the keys against the tuner's
 * {@link org.peft4j.core.spi.KeyPolicy}, safetensors structure, base-model fingerprint, tensor
 * names and shapes against the wrapped graph) before any parameter is written.
 *
 * <p>A save writes the files of all adapters of a directory (weights, config, side file) into a
 * staging directory and switches them over with one rename ({@link DirectoryTransaction}), so a
 * save that stops half-way (a crash, a full disk) leaves the previous files or the new ones;
 * readers take each file through {@link #file}. Files can still be mixed by other means (copied
 * together by hand, written by an older version), so the side file records the SHA-256 of the
 * weights and config it was written with ({@value #WEIGHTS_DIGEST_KEY}, {@value #CONFIG_DIGEST_KEY}),
 * and loading refuses weights that disagree with a side file that belongs to the config. The
 * directory's default adapter lists the other adapters saved with it, with the digests of their weights
 * ({@value #SAVED_ADAPTERS_KEY}): {@link org.peft4j.core.Peft#load} loads exactly those, so the
 * sub-directory of an adapter deleted since an earlier save into the same directory stays on disk
 * but does not come back.
 *
 * <p>This class holds the file names and keys; the parts are {@link AdapterLayout} (which tensor
 * holds which parameter), {@link AdapterWriter}, {@link AdapterReader}, {@link AdapterSidecar}
 * (the side file, and the {@code "peft4j"} object of files written before it existed),
 * {@link ModulePathTranslation} (files in a PyTorch model's module paths) and
 * {@link TrainingStateFiles} (what resuming training needs).
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterFiles {

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    public static final String STATE_FILE = "training_state.safetensors";
    /** peft4j's records beside an adapter's two files ({@link AdapterSidecar}). */
    public static final String SIDE_FILE = "peft4j.json";
    /**
     * A weights file in PyTorch's pickle format, which PEFT wrote before safetensors (and still
     * writes with {@code safe_serialization=False}); peft4j does not read it.
     */
    public static final String PICKLE_WEIGHTS_FILE = "adapter_model.bin";
    /** Key of the side file: hex SHA-256 of the {@value #WEIGHTS_FILE} written with it. */
    public static final String WEIGHTS_DIGEST_KEY = "adapter_model_sha256";
    /** Key of the side file: hex SHA-256 of the {@value #CONFIG_FILE} written with it. */
    public static final String CONFIG_DIGEST_KEY = "adapter_config_sha256";
    /**
     * Key of the side file of a directory's default adapter: the other adapters saved with it,
     * name → hex SHA-256 of their weights file.
     */
    public static final String SAVED_ADAPTERS_KEY = "saved_adapters";
    /**
     * Key of the side file of a checkpoint's default adapter: hex SHA-256 of the
     * {@value #STATE_FILE} written with the adapters.
     */
    public static final String TRAINING_STATE_KEY = "training_state_sha256";
    /** Key of the side file: the base model's fingerprint ({@link BaseFingerprint}). */
    public static final String FINGERPRINT_KEY = "base_model_fingerprint";
    /**
     * Key of the side file: the tuner's own records, what its config wrote under
     * {@value org.peft4j.core.spi.AdapterFileKeys#EXTENSION} (e.g. prompt tuning's embedding layer).
     */
    public static final String TUNER_CONFIG_KEY = "config";
    /** Key of the side file: {@code "pytorch"} when the tensors and keys are in a model's module paths. */
    public static final String MODULE_NAMES_KEY = "module_names";
    /** Key of the side file (and of the {@code "peft4j"} object of format 1): the format's number. */
    public static final String FORMAT_KEY = "format_version";
    /** The format written: 2, the side file (1 was a {@code "peft4j"} object inside {@value #CONFIG_FILE}). */
    public static final int FORMAT_VERSION = 2;

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

    public static MessageDigest sha256() {
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

    /** The largest {@value #CONFIG_FILE} (and {@value #SIDE_FILE}) read: far more than any tuner writes. */
    static final int MAX_CONFIG_BYTES = 16 << 20;

    /**
     * The bytes of an {@value #CONFIG_FILE}, read only up to {@value #MAX_CONFIG_BYTES} (a file
     * replaced by a larger one after a size check cannot make this read more).
     *
     * @throws AdapterFormatException if the file is larger
     */
    public static byte[] readConfig(Path file) throws IOException {
        return readBounded(file, "an adapter config");
    }

    /**
     * The bytes of a JSON file of an adapter ({@value #CONFIG_FILE}, {@value #SIDE_FILE}), read
     * only up to {@value #MAX_CONFIG_BYTES}; {@code kind} names the file's role in the message.
     *
     * @throws AdapterFormatException if the file is larger
     */
    static byte[] readBounded(Path file, String kind) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] bytes = in.readNBytes(MAX_CONFIG_BYTES + 1);
            if (bytes.length > MAX_CONFIG_BYTES) {
                throw new AdapterFormatException(file + " is larger than " + MAX_CONFIG_BYTES + " bytes, the most "
                        + kind + " may have");
            }
            return bytes;
        }
    }

    public static String digestValue(Object v, String what) {
        if (!(v instanceof String) || !((String) v).matches("[0-9a-f]{64}")) {
            throw new AdapterFormatException(what + " must be a SHA-256 as 64 lower-case hex digits; got " + v);
        }
        return (String) v;
    }
}
