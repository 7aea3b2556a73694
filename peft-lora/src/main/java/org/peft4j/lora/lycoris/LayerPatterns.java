package org.peft4j.lora.lycoris;

import com.google.re2j.Pattern;
import com.google.re2j.PatternSyntaxException;
import java.util.Collections;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.spi.ConfigJson;

/**
 * Per-layer ranks and alphas of a LyCORIS-style config, Hugging Face PEFT's {@code rank_pattern} and
 * {@code alpha_pattern} ({@code LycorisConfig}): a key is a regular expression (RE2) matched
 * against the end of a layer's name at a {@code "."} boundary, as PEFT's {@code get_pattern_key}
 * does ({@code (.*\.)?(key)} must match the whole name); the first matching key in sorted order (the
 * order {@code adapter_config.json} keeps them in) gives the layer's value, else the config's
 * {@code r} or {@code alpha} applies.
 *
 * <p>Thread-safety: immutable; the builder is not thread-safe.
 */
public final class LayerPatterns {

    /** No per-layer values. */
    public static final LayerPatterns NONE = new Builder().build();

    private final Map<String, Integer> ranks;
    private final Map<String, Double> alphas;

    private LayerPatterns(Builder b) {
        this.ranks = Collections.unmodifiableMap(new TreeMap<>(b.ranks));
        this.alphas = Collections.unmodifiableMap(new TreeMap<>(b.alphas));
    }

    /** Per-layer ranks by key, in the order keys are tried. */
    public Map<String, Integer> ranks() {
        return ranks;
    }

    /** Per-layer alphas by key, in the order keys are tried. */
    public Map<String, Double> alphas() {
        return alphas;
    }

    /** The rank of layer {@code layerName}: its pattern's value, else {@code rank}. */
    public int rankFor(String layerName, int rank) {
        String key = keyFor(ranks.keySet(), layerName);
        return key == null ? rank : ranks.get(key);
    }

    /** The alpha of layer {@code layerName}: its pattern's value, else {@code alpha}. */
    public double alphaFor(String layerName, double alpha) {
        String key = keyFor(alphas.keySet(), layerName);
        return key == null ? alpha : alphas.get(key);
    }

    private static String keyFor(Iterable<String> keys, String layerName) {
        for (String k : keys) {
            if (pattern(k).matches(layerName)) {
                return k;
            }
        }
        return null;
    }

    private static Pattern pattern(String key) {
        return Pattern.compile("(?:.*\\.)?(?:" + key + ")");
    }

    /** Writes {@code rank_pattern} and {@code alpha_pattern} (objects, empty when unset, as PEFT writes them). */
    public void writeJson(Map<String, Object> json) {
        json.put("rank_pattern", new TreeMap<>(ranks));
        json.put("alpha_pattern", new TreeMap<>(alphas));
    }

    /**
     * Reads {@code rank_pattern} (pattern to integer rank) and {@code alpha_pattern} (pattern to
     * number) of an {@code adapter_config.json}; absent or null means none.
     *
     * @throws AdapterFormatException naming the key, the pattern and what was found
     */
    public static LayerPatterns fromJson(Map<String, Object> json) {
        Builder b = new Builder();
        try {
            for (Map.Entry<String, Object> e : object(json, "rank_pattern").entrySet()) {
                Object v = e.getValue();
                if (!(v instanceof Integer || v instanceof Long) || ((Number) v).longValue() != ((Number) v).intValue()) {
                    throw new AdapterFormatException("adapter_config.json: \"rank_pattern\" value of \"" + e.getKey()
                            + "\" must be an integer; got " + ConfigJson.describe(v));
                }
                b.rank(e.getKey(), ((Number) v).intValue());
            }
            for (Map.Entry<String, Object> e : object(json, "alpha_pattern").entrySet()) {
                if (!(e.getValue() instanceof Number)) {
                    throw new AdapterFormatException("adapter_config.json: \"alpha_pattern\" value of \"" + e.getKey()
                            + "\" must be a number; got " + ConfigJson.describe(e.getValue()));
                }
                b.alpha(e.getKey(), ((Number) e.getValue()).doubleValue());
            }
        } catch (IllegalArgumentException e) {
            throw new AdapterFormatException("adapter_config.json: " + e.getMessage(), e);
        }
        return b.build();
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> object(Map<String, Object> json, String key) {
        Object v = json.get(key);
        if (v == null) {
            return Map.of();
        }
        if (!(v instanceof Map)) {
            throw new AdapterFormatException("adapter_config.json: \"" + key + "\" must be an object of pattern to value; got "
                    + ConfigJson.describe(v));
        }
        return (Map<String, Object>) v;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LayerPatterns p && ranks.equals(p.ranks) && alphas.equals(p.alphas);
    }

    @Override
    public int hashCode() {
        return Objects.hash(ranks, alphas);
    }

    /** {@code rankPattern={...}, alphaPattern={...}}, the parts that are set (empty when none). */
    @Override
    public String toString() {
        return (ranks.isEmpty() ? "" : "rankPattern=" + ranks) + (ranks.isEmpty() || alphas.isEmpty() ? "" : ", ")
                + (alphas.isEmpty() ? "" : "alphaPattern=" + alphas);
    }

    /**
     * Builds {@link LayerPatterns}; every setter checks its argument at once.
     *
     * <p>Thread-safety: not thread-safe.
     */
    public static final class Builder {
        private final Map<String, Integer> ranks = new TreeMap<>();
        private final Map<String, Double> alphas = new TreeMap<>();

        /** A builder holding {@code p}'s values. */
        public Builder(LayerPatterns p) {
            ranks.putAll(p.ranks);
            alphas.putAll(p.alphas);
        }

        /** An empty builder. */
        public Builder() {
        }

        /**
         * Rank of the layers whose name {@code key} matches.
         *
         * @throws IllegalArgumentException if the rank is not positive, the key is empty, given
         *     already or not an RE2 expression
         */
        public Builder rank(String key, int rank) {
            checkKey(key, ranks, "rankPattern");
            if (rank <= 0) {
                throw new IllegalArgumentException("rankPattern \"" + key + "\": rank must be positive; got " + rank);
            }
            ranks.put(key, rank);
            return this;
        }

        /**
         * Alpha of the layers whose name {@code key} matches.
         *
         * @throws IllegalArgumentException if alpha is not positive and finite, the key is empty,
         *     given already or not an RE2 expression
         */
        public Builder alpha(String key, double alpha) {
            checkKey(key, alphas, "alphaPattern");
            if (!(alpha > 0) || Double.isInfinite(alpha)) {
                throw new IllegalArgumentException("alphaPattern \"" + key + "\": alpha must be positive and finite; got "
                        + alpha);
            }
            alphas.put(key, alpha);
            return this;
        }

        private static void checkKey(String key, Map<String, ?> given, String what) {
            Objects.requireNonNull(key, what + " key must not be null");
            if (key.isEmpty()) {
                throw new IllegalArgumentException(what + " key must not be empty");
            }
            if (given.containsKey(key)) {
                throw new IllegalArgumentException(what + ": key \"" + key + "\" is given twice");
            }
            try {
                pattern(key);
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException(what + ": key \"" + key + "\" is not a regular expression RE2 accepts: "
                        + e.getDescription(), e);
            }
        }

        public LayerPatterns build() {
            return new LayerPatterns(this);
        }
    }
}
