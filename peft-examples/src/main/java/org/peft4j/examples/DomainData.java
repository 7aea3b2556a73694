package org.peft4j.examples;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The adaptation setting: a source domain (several languages, for pretraining) and a held-out
 * target domain (one language, for fine-tuning), each split into train and held-out text; every
 * tenth document goes to held-out. One vocabulary covers both domains, so characters of the target
 * language that the source never shows still have an id (their embeddings are simply untrained
 * after pretraining).
 *
 * @param vocab the shared character vocabulary
 * @param sourceTrain pretraining text
 * @param sourceHeldOut source-domain held-out text (to measure forgetting)
 * @param targetTrain fine-tuning text
 * @param targetHeldOut target-domain held-out text (the headline metric)
 * @param targetPrompts the openings of a few held-out target documents, to prompt generation
 * @param fingerprint SHA-256 over the vocabulary and all four texts, for cache keys
 */
record DomainData(CharVocabulary vocab, TextStream sourceTrain, TextStream sourceHeldOut, TextStream targetTrain,
                  TextStream targetHeldOut, List<String> targetPrompts, String fingerprint) {

    /** Characters a vocabulary entry needs to be seen to get its own id. */
    static final int MIN_CHAR_COUNT = 20;

    /**
     * Splits {@code byLanguage} into the two domains.
     *
     * @param maxChars at most this many characters of documents per language (a slice for quick runs)
     * @throws IllegalArgumentException if a language is missing or the target is also a source
     */
    static DomainData split(Map<String, List<String>> byLanguage, List<String> sources, String target, int maxChars) {
        if (sources.isEmpty()) {
            throw new IllegalArgumentException("name at least one source language");
        }
        if (sources.contains(target)) {
            throw new IllegalArgumentException("the target language " + target + " must not be a source language "
                    + sources);
        }
        List<String> srcTrain = new ArrayList<>();
        List<String> srcHeld = new ArrayList<>();
        for (String s : sources) {
            splitInto(docs(byLanguage, s), maxChars, srcTrain, srcHeld);
        }
        List<String> tgtTrain = new ArrayList<>();
        List<String> tgtHeld = new ArrayList<>();
        splitInto(docs(byLanguage, target), maxChars, tgtTrain, tgtHeld);

        List<String> all = new ArrayList<>(srcTrain);
        all.addAll(tgtTrain);
        CharVocabulary vocab = CharVocabulary.build(all, MIN_CHAR_COUNT);
        List<String> prompts = new ArrayList<>();
        for (int i = 0; i < Math.min(3, tgtHeld.size()); i++) {
            String d = tgtHeld.get(i);
            prompts.add(d.substring(0, Math.min(48, d.length())));
        }
        String fp = sha256(vocab.describe(), String.join("\n", srcTrain), String.join("\n", srcHeld),
                String.join("\n", tgtTrain), String.join("\n", tgtHeld));
        return new DomainData(vocab, TextStream.of(srcTrain, vocab), TextStream.of(srcHeld, vocab),
                TextStream.of(tgtTrain, vocab), TextStream.of(tgtHeld, vocab), List.copyOf(prompts), fp);
    }

    private static List<String> docs(Map<String, List<String>> byLanguage, String lang) {
        List<String> d = byLanguage.get(lang);
        if (d == null || d.size() < 10) {
            throw new IllegalArgumentException("language \"" + lang + "\" has " + (d == null ? 0 : d.size())
                    + " documents, at least 10 are needed; languages: " + byLanguage.keySet());
        }
        return d;
    }

    private static void splitInto(List<String> docs, int maxChars, List<String> train, List<String> held) {
        long used = 0;
        for (int i = 0; i < docs.size() && used < maxChars; i++) {
            String d = docs.get(i);
            used += d.length();
            (i % 10 == 0 ? held : train).add(d);
        }
    }

    /** Hex SHA-256 of the parts, each followed by a zero byte. */
    static String sha256(String... parts) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (String p : parts) {
                md.update(p.getBytes(StandardCharsets.UTF_8));
                md.update((byte) 0);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JVM has no SHA-256", e);
        }
    }
}
