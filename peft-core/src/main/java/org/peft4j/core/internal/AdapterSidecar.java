package org.peft4j.core.internal;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.spi.AdapterFileKeys;
import org.peft4j.core.spi.PeftJson;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * peft4j's records of one saved adapter, kept beside PEFT's two files in
 * {@value AdapterFiles#SIDE_FILE} so that {@code adapter_config.json} holds PEFT's keys only: the
 * format number, the library version, the base model's fingerprint, the SHA-256 of the weights and
 * config files written with it, the adapters saved with a directory's default adapter, a
 * checkpoint's training-state digest, whether the files are in a model's module paths, and the
 * tuner's own keys ({@value AdapterFiles#TUNER_CONFIG_KEY}).
 *
 * <p>Files of format 1 kept these records in a {@code "peft4j"} object inside
 * {@code adapter_config.json} (the tuner's keys mixed with the others); they are read from there
 * when there is no side file.
 *
 * <p>A side file whose recorded config digest differs from the config beside it does not describe
 * that config: another tool (PEFT saving into the same directory, a hand edit) rewrote the config
 * after peft4j saved. Its records are then not used (with a warning), and the adapter loads as
 * another writer's would: no fingerprint or digest check, no list of saved adapters.
 *
 * <p>Thread-safety: stateless; {@link Records} is immutable.
 */
public final class AdapterSidecar {

    private static final Logger LOG = LoggerFactory.getLogger(AdapterSidecar.class);

    private AdapterSidecar() {
    }

    /**
     * The records of one adapter: {@code values} the bookkeeping keys, {@code tunerConfig} the
     * tuner's own keys; {@code source} names where they were read (for messages).
     */
    public record Records(Map<String, Object> values, Map<String, Object> tunerConfig, int formatVersion, String source) {

        /** No records: an adapter another writer made. */
        static Records none() {
            return new Records(Map.of(), Map.of(), 0, null);
        }

        /** A record, or null. */
        public Object get(String key) {
            return values.get(key);
        }

        /** A record named for messages, e.g. {@code /dir/peft4j.json: "adapter_model_sha256"}. */
        public String describe(String key) {
            return formatVersion == 1 ? source + ": \"" + AdapterFileKeys.EXTENSION + "\".\"" + key + "\""
                    : source + ": \"" + key + "\"";
        }

        /** Whether the tensors and keys are in a model's module paths ({@value AdapterFiles#MODULE_NAMES_KEY}). */
        public boolean inModulePaths() {
            return "pytorch".equals(values.get(AdapterFiles.MODULE_NAMES_KEY));
        }

        /** Whether the files are of format 1, whose trained modules that are not dense keep DL4J's parameter keys. */
        public boolean legacy() {
            return formatVersion == 1;
        }
    }

    /**
     * Reads the records of the adapter in {@code dir}, whose config file held {@code configBytes},
     * parsed as {@code json}; a format-1 {@code "peft4j"} object is removed from {@code json}.
     *
     * @throws AdapterFormatException if the side file or the {@code "peft4j"} object is malformed
     */
    public static Records read(Path dir, byte[] configBytes, Map<String, Object> json) throws IOException {
        Path configFile = AdapterFiles.file(dir, AdapterFiles.CONFIG_FILE);
        Object legacy = json.remove(AdapterFileKeys.EXTENSION);
        if (legacy != null && !(legacy instanceof Map)) {
            throw new AdapterFormatException(configFile + ": \"" + AdapterFileKeys.EXTENSION + "\" must be an object; got "
                    + legacy);
        }
        Path side = AdapterFiles.file(dir, AdapterFiles.SIDE_FILE);
        if (Files.isRegularFile(side)) {
            Records r = readSideFile(side, configBytes);
            if (r != null) {
                if (legacy != null) {
                    LOG.warn("{} holds a \"{}\" object and {} is beside it; the side file's records are used", configFile,
                            AdapterFileKeys.EXTENSION, side.getFileName());
                }
                return r;
            }
        }
        if (legacy == null) {
            return Records.none();
        }
        Map<String, Object> values = stringKeys((Map<?, ?>) legacy);
        Object format = values.get(AdapterFiles.FORMAT_KEY);
        if (format != null && !Integer.valueOf(1).equals(format)) {
            throw new AdapterFormatException(configFile + ": \"" + AdapterFileKeys.EXTENSION + "\".\"" + AdapterFiles.FORMAT_KEY
                    + "\" must be 1 (later formats keep peft4j's records in " + AdapterFiles.SIDE_FILE + "); got " + format);
        }
        return new Records(Collections.unmodifiableMap(values), Collections.unmodifiableMap(values), 1,
                configFile.toString());
    }

    /** Reads the records of the adapter in {@code dir} (its config and side file). */
    public static Records read(Path dir) throws IOException {
        Path configFile = AdapterFiles.file(dir, AdapterFiles.CONFIG_FILE);
        byte[] bytes = AdapterFiles.readConfig(configFile);
        return read(dir, bytes, PeftJson.parseObject(bytes, configFile.toString()));
    }

    /** The side file's records, or null when it was written with another config than {@code configBytes}. */
    private static Records readSideFile(Path side, byte[] configBytes) throws IOException {
        String what = side.toString();
        Map<String, Object> values = PeftJson.parseObject(AdapterFiles.readBounded(side, "peft4j's records"), what);
        Object format = values.get(AdapterFiles.FORMAT_KEY);
        if (!Integer.valueOf(AdapterFiles.FORMAT_VERSION).equals(format)) {
            throw new AdapterFormatException(what + ": \"" + AdapterFiles.FORMAT_KEY + "\" must be "
                    + AdapterFiles.FORMAT_VERSION + (format instanceof Integer i && i > AdapterFiles.FORMAT_VERSION
                    ? "; got " + format + ": the adapter was saved by a later peft4j, upgrade to load it" : "; got " + format));
        }
        Object recorded = values.get(AdapterFiles.CONFIG_DIGEST_KEY);
        String configDigest = AdapterFiles.digestValue(recorded, what + ": \"" + AdapterFiles.CONFIG_DIGEST_KEY + "\"");
        String actual = HexFormat.of().formatHex(AdapterFiles.sha256().digest(configBytes));
        if (!configDigest.equals(actual)) {
            LOG.warn("{} was written with another {} (SHA-256 {}, the file beside it has {}): the config was rewritten "
                    + "after peft4j saved it (by PEFT, or by hand), so peft4j's records (base-model fingerprint, digests, "
                    + "adapters saved with it) are not used and the adapter loads as another writer's would", what,
                    AdapterFiles.CONFIG_FILE, configDigest, actual);
            return null;
        }
        Object config = values.getOrDefault(AdapterFiles.TUNER_CONFIG_KEY, Map.of());
        if (!(config instanceof Map)) {
            throw new AdapterFormatException(what + ": \"" + AdapterFiles.TUNER_CONFIG_KEY + "\" must be an object; got "
                    + config);
        }
        Object names = values.get(AdapterFiles.MODULE_NAMES_KEY);
        if (names != null && !"pytorch".equals(names)) {
            throw new AdapterFormatException(what + ": \"" + AdapterFiles.MODULE_NAMES_KEY + "\" must be \"pytorch\" or "
                    + "absent; got " + names);
        }
        return new Records(Collections.unmodifiableMap(values), Collections.unmodifiableMap(stringKeys((Map<?, ?>) config)),
                AdapterFiles.FORMAT_VERSION, what);
    }

    /**
     * The side file of a save: the bookkeeping {@code values} (digests, fingerprint, ...), the
     * format number and library version, and the tuner's own keys under
     * {@value AdapterFiles#TUNER_CONFIG_KEY} when there are any.
     */
    static byte[] toBytes(Map<String, Object> values, Map<String, Object> tunerConfig) {
        Map<String, Object> m = new TreeMap<>(values);
        m.put(AdapterFiles.FORMAT_KEY, AdapterFiles.FORMAT_VERSION);
        m.put("library_version", AdapterFiles.libraryVersion());
        if (!tunerConfig.isEmpty()) {
            m.put(AdapterFiles.TUNER_CONFIG_KEY, new TreeMap<>(tunerConfig));
        }
        return PeftJson.write(m).getBytes(StandardCharsets.UTF_8);
    }

    private static Map<String, Object> stringKeys(Map<?, ?> m) {
        Map<String, Object> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(String.valueOf(k), v));
        return out;
    }
}
