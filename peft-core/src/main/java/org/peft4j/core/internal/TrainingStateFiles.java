package org.peft4j.core.internal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.io.AtomicFiles;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.core.io.Safetensors;
import org.peft4j.core.io.SafetensorsFile;
import org.peft4j.core.spi.Messages;

/**
 * What resuming training needs beside the adapters ({@link AdapterFiles#STATE_FILE}): the active
 * adapter's optimizer state, the optimizer state each inactive adapter keeps, and the iteration
 * and epoch counters. {@link #read} returns the validated content as a {@link TrainingState} for
 * the model to apply.
 *
 * <p>Thread-safety: stateless.
 */
public final class TrainingStateFiles {

    private TrainingStateFiles() {
    }

    /** Tensor name prefix of an inactive adapter's optimizer state in {@value AdapterFiles#STATE_FILE}. */
    static final String INACTIVE_STATE_PREFIX = "updater_state.";

    /**
     * Writes the optimizer state and iteration/epoch counters of {@code g} next to its adapter
     * files, with the optimizer state each inactive adapter keeps for when it is active again
     * ({@code inactiveStates}, by adapter name) as {@code updater_state.<name>}. Returns the file's
     * hex SHA-256, for the adapters written after it to record ({@link #save}).
     */
    public static String save(ComputationGraph g, String activeAdapter, Map<String, INDArray> inactiveStates,
                                           Path dir) throws IOException {
        Map<String, SafeTensor> tensors = new LinkedHashMap<>();
        INDArray state = g.getUpdater(false) == null ? null : g.getUpdater().getStateViewArray();
        if (state != null) {
            tensors.put("updater_state", SafeTensor.of(state.dup('c').reshape(state.length())));
        }
        for (Map.Entry<String, INDArray> e : new TreeMap<>(inactiveStates).entrySet()) {
            INDArray s = e.getValue();
            tensors.put(INACTIVE_STATE_PREFIX + e.getKey(), SafeTensor.of(s.dup('c').reshape(s.length())));
        }
        Map<String, String> meta = new TreeMap<>();
        meta.put("format", "pt");
        meta.put("iteration_count", Integer.toString(g.getConfiguration().getIterationCount()));
        meta.put("epoch_count", Integer.toString(g.getConfiguration().getEpochCount()));
        meta.put("active_adapter", activeAdapter);
        meta.put("library_version", AdapterFiles.libraryVersion());
        byte[] bytes = Safetensors.toBytes(tensors, meta);
        Files.createDirectories(dir);
        AtomicFiles.write(dir.resolve(AdapterFiles.STATE_FILE), bytes);
        return HexFormat.of().formatHex(AdapterFiles.sha256().digest(bytes));
    }

    /**
     * What {@link #save} wrote, validated: the active adapter's name, its optimizer state (null
     * when the model had none), the counters, and the optimizer states of the inactive adapters
     * by name. {@link #checkAdapters} checks the names against a model's adapters.
     *
     * @param file the file, for messages
     */
    public record TrainingState(Path file, String activeAdapter, SafeTensor activeState, int iterationCount,
                                int epochCount, Map<String, SafeTensor> inactiveStates) {

        /**
         * Refuses a state that names an adapter {@code adapters} does not hold, or holds an
         * optimizer state for the active adapter among the inactive ones.
         *
         * @throws AdapterFormatException naming the adapter and the model's adapters
         */
        public void checkAdapters(List<String> adapters) {
            if (!adapters.contains(activeAdapter)) {
                throw new AdapterFormatException(file + ": active adapter \"" + Messages.shorten(activeAdapter) + "\" is not among "
                        + Messages.list(adapters));
            }
            for (String name : inactiveStates.keySet()) {
                if (name.equals(activeAdapter) || !adapters.contains(name)) {
                    throw new AdapterFormatException(file + ": tensor \"" + Messages.shorten(INACTIVE_STATE_PREFIX + name) + "\" is not "
                            + "the optimizer state of an inactive adapter of this model; expected \"updater_state\" and \""
                            + INACTIVE_STATE_PREFIX + "<name>\" for <name> among " + Messages.list(adapters) + " other than the active \""
                            + Messages.shorten(activeAdapter) + "\"");
                }
            }
        }
    }

    /**
     * Reads what {@link #save} wrote next to the adapters in {@code dir}, after checking that the
     * default adapter's config recorded this file's SHA-256 (so it belongs to the same save).
     *
     * @param defaultActive the active adapter of a file that names none
     * @param adapters how many adapters were loaded from {@code dir}: the file holds at most one
     *     optimizer state per adapter, so a header naming more tensors is refused before it is read
     * @throws AdapterFormatException if the file is missing or malformed, or not the one saved
     *     with the adapters
     */
    public static TrainingState read(Path dir, String defaultActive, int adapters) throws IOException {
        Path file = AdapterFiles.file(dir, AdapterFiles.STATE_FILE);
        if (!Files.isRegularFile(file)) {
            throw new AdapterFormatException("no checkpoint in " + dir + ": " + AdapterFiles.STATE_FILE + " is missing");
        }
        SafetensorsFile f = Safetensors.readData(file, Safetensors.readHeader(file, adapters,
                "a checkpoint of " + adapters + " adapters holds one optimizer state per adapter"));
        String digest = f.sha256();
        AdapterSidecar.Records records = AdapterSidecar.read(dir);
        Object recorded = records.get(AdapterFiles.TRAINING_STATE_KEY);
        if (recorded == null) {
            throw new AdapterFormatException(file + " does not belong to the adapters in " + dir + ": their records ("
                    + (records.source() == null ? AdapterFiles.SIDE_FILE + " is missing or rewritten" : records.source())
                    + ") hold no training state, so they were written by saveAdapter, not saveCheckpoint (after the "
                    + "checkpoint or without one); resume needs the files of one saveCheckpoint");
        }
        if (!AdapterFiles.digestValue(recorded, records.describe(AdapterFiles.TRAINING_STATE_KEY)).equals(digest)) {
            throw new AdapterFormatException(file + " has SHA-256 " + digest + ", but " + records.source() + " records "
                    + recorded + ": the optimizer state and the adapters come from different saves, for example files copied "
                    + "together by hand; resume needs the files of one saveCheckpoint");
        }
        Map<String, String> meta = f.metadata();
        int iteration = parseCount(meta, "iteration_count", file);
        int epoch = parseCount(meta, "epoch_count", file);
        String active = meta.getOrDefault("active_adapter", defaultActive);
        Map<String, SafeTensor> inactive = new TreeMap<>();
        for (Map.Entry<String, SafeTensor> e : f.tensors().entrySet()) {
            if (e.getKey().equals("updater_state")) {
                continue;
            }
            if (!e.getKey().startsWith(INACTIVE_STATE_PREFIX)) {
                throw new AdapterFormatException(file + ": tensor \"" + Messages.shorten(e.getKey()) + "\" is not an optimizer state; "
                        + "expected \"updater_state\" and \"" + INACTIVE_STATE_PREFIX + "<name>\"");
            }
            inactive.put(e.getKey().substring(INACTIVE_STATE_PREFIX.length()), e.getValue());
        }
        return new TrainingState(file, active, f.tensors().get("updater_state"), iteration, epoch,
                Collections.unmodifiableMap(inactive));
    }

    private static int parseCount(Map<String, String> meta, String key, Path file) {
        try {
            int v = Integer.parseInt(meta.get(key));
            if (v < 0) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException e) {
            throw new AdapterFormatException(file + ": metadata \"" + key + "\" must be a non-negative integer; got "
                    + Messages.shorten(meta.get(key)));
        }
    }
}
