package org.peft4j.examples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.peft4j.core.Peft;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.PeftModel;
import org.peft4j.lora.LoraConfig;
import org.peft4j.quant.QLoraConfig;


/**
 * Saves what a method trained and loads it onto a fresh base: adapters as Hugging Face PEFT
 * files ({@link PeftModel#saveAdapter}, {@link Peft#load}); methods without an adapter file
 * (full fine-tuning, transfer learning) as a DL4J model zip of the graph.
 *
 * <p>Thread-safety: stateless.
 */
final class AdapterFiles {

    private static final String MODEL_ZIP = "model.zip";

    private AdapterFiles() {
    }

    /** Whether the method writes an adapter file (every tuner that implements {@code toAdapterConfig}). */
    static boolean hasAdapterFile(PeftModel peft) {
        try {
            peft.config().toAdapterConfig();
            return true;
        } catch (UnsupportedOperationException e) {
            return false;
        }
    }

    /** Saves and returns the bytes written. */
    static long save(PeftModel peft, Path dir) {
        try {
            Files.createDirectories(dir);
            if (hasAdapterFile(peft)) {
                peft.saveAdapter(dir);
                return Files.size(dir.resolve("adapter_model.safetensors")) + Files.size(dir.resolve("adapter_config.json"));
            }
            Path f = dir.resolve(MODEL_ZIP);
            ModelSerializer.writeModel(peft.graph(), f.toFile(), false);
            return Files.size(f);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save the adapter to " + dir, e);
        }
    }

    /** The trained model rebuilt from {@code dir} onto {@code base}. */
    static ComputationGraph load(ComputationGraph base, PeftModel trained, Path dir) {
        try {
            if (hasAdapterFile(trained)) {
                PeftConfig original = trained.config();
                return Peft.load(base, dir, read -> original instanceof QLoraConfig
                        ? QLoraConfig.of((LoraConfig) read, ((QLoraConfig) original).spec()) : read, false).graph();
            }
            return ModelSerializer.restoreComputationGraph(dir.resolve(MODEL_ZIP).toFile(), false);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load the adapter from " + dir, e);
        }
    }
}
