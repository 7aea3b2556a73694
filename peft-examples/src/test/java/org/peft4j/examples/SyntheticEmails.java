package org.peft4j.examples;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;

/**
 * Small generated e-mails for the spam example's tests (the real corpus is a 20 MB download): raw
 * RFC 822 messages with relay headers, a subject and a body composed at random from spam-like or
 * ham-like phrases, and a tarball in the layout of stdlib's package
 * ({@code package/data/<group>/<id>.<md5>.txt}).
 */
final class SyntheticEmails {

    private static final String[] SPAM = {
        "Claim your free prize now", "You have been selected to win a cash reward", "Lowest mortgage rates guaranteed",
        "Buy cheap meds online without prescription", "Earn $5000 a week working from home",
        "Limited time offer, click here to order", "Act now, this exclusive deal expires tonight",
        "Lose 30 pounds in 30 days with our miracle pill", "Get out of debt fast, no credit check",
        "Congratulations, your account won a free vacation", "Double your income with this secret system",
        "Unsubscribe here if you do not want more special offers", "Order today and save 80 percent",
        "Hot singles are waiting for you", "Refinance now and cut your payments in half",
    };

    private static final String[] HAM = {
        "The build failed on the nightly branch after the last merge", "Can we move the review meeting to Thursday",
        "I attached the patch for the kernel module, please test it", "Thanks for the notes from yesterday's call",
        "The mailing list archive is back online", "Does anyone know why the package does not compile on Debian",
        "Lunch with the team is at noon in the usual place", "Here is the updated draft of the report",
        "The server will be down for maintenance on Sunday morning", "I fixed the bug in the parser and pushed it",
        "Could you send me the slides from the conference talk", "My daughter's school play is on Friday evening",
        "We should upgrade the database before the release", "The config file lives in the etc directory",
        "Please review the pull request when you have a minute",
    };

    private SyntheticEmails() {
    }

    /** One raw message: relay headers, a subject and a three-sentence body of one kind. */
    static String raw(boolean spam, Random rnd) {
        String[] pool = spam ? SPAM : HAM;
        StringBuilder body = new StringBuilder();
        for (int i = 0; i < 3; i++) {
            body.append(pool[rnd.nextInt(pool.length)]).append(". ");
        }
        return "From someone@example.org  Thu Aug 22 13:17:22 2002\n"
                + "Return-Path: <someone@example.org>\n"
                + "Received: from relay.example.org (relay [10.0.0." + rnd.nextInt(250) + "])\n"
                + "\tby mail.example.org with ESMTP id " + Integer.toHexString(rnd.nextInt()) + "\n"
                + "Subject: " + pool[rnd.nextInt(pool.length)] + "\n"
                + "Content-Type: text/plain; charset=us-ascii\n"
                + "\n" + body + "\n";
    }

    /**
     * Writes a gzipped tarball with {@code perGroup} messages in each of the five groups (spam in
     * {@code spam-*}, ham elsewhere); returns it.
     */
    static Path tarball(Path file, int perGroup, long seed) throws IOException {
        Random rnd = new Random(seed);
        try (OutputStream os = Files.newOutputStream(file);
             TarArchiveOutputStream tar = new TarArchiveOutputStream(new GZIPOutputStream(os))) {
            add(tar, "package/LICENSE", "generated for tests");
            for (String g : List.of("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")) {
                for (int i = 1; i <= perGroup; i++) {
                    String id = String.format(Locale.ROOT, "%05d", i);
                    String name = "package/data/" + g + "/" + id + "." + "0123456789abcdef0123456789abcdef";
                    String text = raw(g.startsWith("spam"), rnd);
                    add(tar, name + ".json", "{\"group\":\"" + g + "\"}");
                    add(tar, name + ".txt", text);
                }
            }
        }
        return file;
    }

    private static void add(TarArchiveOutputStream tar, String name, String text) throws IOException {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        TarArchiveEntry e = new TarArchiveEntry(name);
        e.setSize(b.length);
        tar.putArchiveEntry(e);
        tar.write(b);
        tar.closeArchiveEntry();
    }

    /** {@code n} texts of each kind, interleaved ham, spam, ham, ... with their labels. */
    static List<Object[]> labelled(int n, Random rnd) {
        List<Object[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new Object[] {EmailText.of(raw(false, rnd), SpamData.MAX_CHARS), false});
            out.add(new Object[] {EmailText.of(raw(true, rnd), SpamData.MAX_CHARS), true});
        }
        return out;
    }
}
