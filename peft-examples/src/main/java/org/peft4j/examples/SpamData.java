package org.peft4j.examples;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.peft4j.examples.SpamAssassinCorpus.Email;

/**
 * The spam example's split with a domain shift: training e-mails from some corpus groups (by
 * default {@code easy-ham-1} and {@code spam-1}), held-out test e-mails from others ({@code hard-ham-1},
 * ham that looks like spam, and {@code spam-2}, spam collected later); no group is in both. The test
 * set is class-balanced (the same number of ham and spam, drawn by a seeded shuffle), so always
 * answering "spam" scores accuracy 0.5 and spam-F1 0.667 rather than looking good. Training batches
 * are class-balanced too (half spam, half ham, drawn with replacement), because the training groups
 * hold five times more ham than spam.
 *
 * <p>Every e-mail is reduced to its subject and body start by {@link EmailText} when the split is made.
 *
 * <p>Thread-safety: immutable after construction; the batch methods use the caller's {@link Random}
 * and {@link EmailEncoder}.
 */
final class SpamData {

    /** Characters of each e-mail kept before tokenizing (far more than the tokens the model reads). */
    static final int MAX_CHARS = 2_000;

    private final List<String> trainHam;
    private final List<String> trainSpam;
    private final List<String> testTexts;
    private final List<Boolean> testSpam;
    private final String description;

    private SpamData(List<String> trainHam, List<String> trainSpam, List<String> testTexts, List<Boolean> testSpam,
                     String description) {
        this.trainHam = trainHam;
        this.trainSpam = trainSpam;
        this.testTexts = testTexts;
        this.testSpam = testSpam;
        this.description = description;
    }

    /**
     * The split of {@code corpus}.
     *
     * @param trainGroups groups to train on (must contain ham and spam)
     * @param testGroups groups to test on (must contain ham and spam, none of {@code trainGroups})
     * @param trainPerClass at most this many training e-mails per class (seeded choice), 0 for all
     * @param testPerClass held-out e-mails per class; fewer if a class has fewer
     * @param seed seed of the choices
     * @throws IllegalArgumentException for overlapping or unknown groups, or a side missing a class
     */
    static SpamData split(List<Email> corpus, List<String> trainGroups, List<String> testGroups, int trainPerClass,
                          int testPerClass, long seed) {
        for (String g : trainGroups) {
            if (testGroups.contains(g)) {
                throw new IllegalArgumentException("group " + g + " is in both the training and the test groups");
            }
        }
        List<Email> train = SpamAssassinCorpus.groups(corpus, trainGroups);
        List<Email> test = SpamAssassinCorpus.groups(corpus, testGroups);
        Random rnd = new Random(seed);
        List<Email> trainHam = pick(train, false, trainPerClass, rnd, "training", trainGroups);
        List<Email> trainSpam = pick(train, true, trainPerClass, rnd, "training", trainGroups);
        List<Email> testHam = pick(test, false, testPerClass, rnd, "test", testGroups);
        List<Email> testSpam = pick(test, true, testPerClass, rnd, "test", testGroups);
        List<Email> testAll = new ArrayList<>(testHam);
        testAll.addAll(testSpam);
        Collections.shuffle(testAll, rnd);
        String used = SpamAssassinCorpus.describe(concat(trainHam, trainSpam));
        String available = SpamAssassinCorpus.describe(train);
        String description = String.format(java.util.Locale.ROOT, "train %s (%s); held-out test %s (%s)", trainGroups,
                used.equals(available) ? used : used + " of " + available, testGroups,
                SpamAssassinCorpus.describe(testAll));
        return new SpamData(texts(trainHam), texts(trainSpam), texts(testAll),
                testAll.stream().map(Email::spam).toList(), description);
    }

    private static List<Email> pick(List<Email> emails, boolean spam, int perClass, Random rnd, String side,
                                    List<String> groups) {
        List<Email> c = new ArrayList<>(emails.stream().filter(e -> e.spam() == spam).toList());
        if (c.isEmpty()) {
            throw new IllegalArgumentException("the " + side + " groups " + groups + " hold no " + (spam ? "spam" : "ham")
                    + "; choose groups with both (ham: easy-ham-1, easy-ham-2, hard-ham-1; spam: spam-1, spam-2)");
        }
        Collections.shuffle(c, rnd);
        return perClass > 0 && perClass < c.size() ? List.copyOf(c.subList(0, perClass)) : List.copyOf(c);
    }

    private static List<Email> concat(List<Email> a, List<Email> b) {
        List<Email> l = new ArrayList<>(a);
        l.addAll(b);
        return l;
    }

    private static List<String> texts(List<Email> emails) {
        return emails.stream().map(e -> EmailText.of(e.raw(), MAX_CHARS)).toList();
    }

    /** A class-balanced training batch: {@code batch / 2} spam and the rest ham, drawn with replacement. */
    MultiDataSet randomBatch(EmailEncoder enc, int batch, Random rnd) {
        List<String> texts = new ArrayList<>(batch);
        List<Boolean> labels = new ArrayList<>(batch);
        for (int i = 0; i < batch; i++) {
            boolean spam = i % 2 == 1;
            List<String> from = spam ? trainSpam : trainHam;
            texts.add(from.get(rnd.nextInt(from.size())));
            labels.add(spam);
        }
        return enc.batch(texts, labels);
    }

    /** The held-out test set in batches of {@code batch} (the last may be smaller), always the same order. */
    List<MultiDataSet> testBatches(EmailEncoder enc, int batch) {
        List<MultiDataSet> out = new ArrayList<>();
        for (int from = 0; from < testTexts.size(); from += batch) {
            int to = Math.min(testTexts.size(), from + batch);
            out.add(enc.batch(testTexts.subList(from, to), testSpam.subList(from, to)));
        }
        return out;
    }

    int trainSize() {
        return trainHam.size() + trainSpam.size();
    }

    int testSize() {
        return testTexts.size();
    }

    /** Held-out texts (subject and body start), in test order. */
    List<String> testTexts() {
        return testTexts;
    }

    /** What was chosen, for the report. */
    String description() {
        return description;
    }
}
