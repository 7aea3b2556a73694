package org.peft4j.examples;

import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the classifier reads of a raw e-mail: the {@code Subject} and the start of the readable
 * body, nothing else of the headers (no sender, no relays, no dates: those identify the corpus
 * year and mailing lists more than spam, and the held-out groups come from other months).
 *
 * <p>The body is found with a small MIME walk: the top-level headers end at the first empty line;
 * a {@code multipart/*} body is split at its boundary and each part read the same way (for
 * {@code multipart/alternative} the {@code text/plain} part wins over {@code text/html}); parts that
 * are not {@code text/*} (attachments, images) are dropped. A text part is decoded from
 * {@code quoted-printable} or {@code base64} in its declared charset (ISO-8859-1 when it is unknown);
 * HTML loses its {@code <style>}, {@code <script>}, comments and tags, and the common entities are
 * replaced. RFC 2047 encoded words in the subject ({@code =?iso-8859-1?Q?...?=}) are decoded.
 * Whitespace runs become one space. The result is cut to {@code maxChars} characters (the tokenizer
 * truncates to the model's length afterwards anyway; the cut only saves tokenizing work).
 *
 * <p>Thread-safety: stateless.
 */
final class EmailText {

    private static final Pattern BOUNDARY = Pattern.compile("(?i)boundary\\s*=\\s*\"?([^\";]+)\"?");
    private static final Pattern CHARSET = Pattern.compile("(?i)charset\\s*=\\s*\"?([^\";\\s]+)\"?");
    private static final Pattern ENCODED_WORD = Pattern.compile("=\\?([^?]+)\\?([bBqQ])\\?([^?]*)\\?=");
    private static final Pattern HTML_DROP = Pattern.compile("(?is)<(style|script)[^>]*>.*?</\\1\\s*>|<!--.*?-->");
    private static final Pattern HTML_BREAK = Pattern.compile("(?i)<\\s*(br|p|div|tr|li|h\\d)\\b[^>]*>");
    private static final Pattern HTML_TAG = Pattern.compile("(?s)<[^>]*>");
    private static final Pattern NUMERIC_ENTITY = Pattern.compile("&#(x?)([0-9a-fA-F]{1,6});");
    private static final Pattern WHITESPACE = Pattern.compile("\\s+");
    private static final int MAX_DEPTH = 5;

    private EmailText() {
    }

    /** Subject and body start of {@code raw}, at most {@code maxChars} characters. */
    static String of(String raw, int maxChars) {
        Part top = Part.parse(raw.replace("\r\n", "\n"));
        String subject = decodeWords(top.header("subject")).strip();
        StringBuilder body = new StringBuilder();
        appendText(top, body, 0, maxChars);
        String text = (subject.isEmpty() ? "" : subject + "\n") + body;
        text = WHITESPACE.matcher(text).replaceAll(" ").strip();
        return text.length() <= maxChars ? text : text.substring(0, maxChars);
    }

    /** One MIME entity: its headers (names lower-cased, folded lines joined) and its body. */
    private record Part(Map<String, String> headers, String body) {

        static Part parse(String text) {
            int end = text.indexOf("\n\n");
            String head = end < 0 ? text : text.substring(0, end);
            String body = end < 0 ? "" : text.substring(end + 2);
            Map<String, String> h = new LinkedHashMap<>();
            String last = null;
            for (String line : head.split("\n", -1)) {
                if (!line.isEmpty() && (line.charAt(0) == ' ' || line.charAt(0) == '\t') && last != null) {
                    h.put(last, h.get(last) + " " + line.strip());
                    continue;
                }
                int colon = line.indexOf(':');
                if (colon > 0) {
                    last = line.substring(0, colon).strip().toLowerCase(Locale.ROOT);
                    h.putIfAbsent(last, line.substring(colon + 1).strip());
                }
            }
            return new Part(h, body);
        }

        String header(String name) {
            return headers.getOrDefault(name, "");
        }

        String contentType() {
            String ct = header("content-type").toLowerCase(Locale.ROOT);
            int semi = ct.indexOf(';');
            ct = (semi < 0 ? ct : ct.substring(0, semi)).strip();
            return ct.isEmpty() ? "text/plain" : ct;
        }
    }

    private static void appendText(Part p, StringBuilder out, int depth, int maxChars) {
        if (out.length() >= maxChars || depth > MAX_DEPTH) {
            return;
        }
        String type = p.contentType();
        if (type.startsWith("multipart/")) {
            List<Part> parts = split(p);
            if (type.equals("multipart/alternative")) {
                Part plain = parts.stream().filter(x -> x.contentType().equals("text/plain")).findFirst().orElse(null);
                if (plain != null) {
                    parts = List.of(plain);
                } else if (!parts.isEmpty()) {
                    parts = List.of(parts.get(parts.size() - 1));
                }
            }
            for (Part child : parts) {
                appendText(child, out, depth + 1, maxChars);
            }
        } else if (type.startsWith("text/")) {
            String text = decodeBody(p);
            if (type.equals("text/html")) {
                text = stripHtml(text);
            }
            out.append(text).append('\n');
        }
    }

    /** The parts of a multipart entity; with no usable boundary or no part, the body as one plain part. */
    private static List<Part> split(Part p) {
        Matcher m = BOUNDARY.matcher(p.header("content-type"));
        if (!m.find()) {
            return List.of(new Part(Map.of(), p.body()));
        }
        String delimiter = "--" + m.group(1).strip();
        List<Part> parts = new ArrayList<>();
        String[] pieces = p.body().split("(?m)^" + Pattern.quote(delimiter) + "(--)?[ \\t]*$", -1);
        for (int i = 1; i < pieces.length; i++) { // pieces[0] is the preamble
            String piece = pieces[i].startsWith("\n") ? pieces[i].substring(1) : pieces[i];
            if (!piece.isBlank()) {
                parts.add(Part.parse(piece.startsWith("\n") ? "\n" + piece : piece));
            }
        }
        return parts.isEmpty() ? List.of(new Part(Map.of(), p.body())) : parts;
    }

    private static String decodeBody(Part p) {
        String cte = p.header("content-transfer-encoding").strip().toLowerCase(Locale.ROOT);
        Charset cs = charset(p.header("content-type"));
        if (cte.equals("base64")) {
            try {
                return new String(Base64.getMimeDecoder().decode(p.body()), cs);
            } catch (IllegalArgumentException e) {
                return "";
            }
        }
        if (cte.equals("quoted-printable")) {
            return new String(quotedPrintable(p.body()), cs);
        }
        return p.body();
    }

    /** Quoted-printable to bytes: soft line breaks removed, {@code =XX} decoded, anything else kept. */
    static byte[] quotedPrintable(String s) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '=' && i + 1 < s.length() && s.charAt(i + 1) == '\n') {
                i++;
            } else if (c == '=' && i + 2 < s.length() && hex(s.charAt(i + 1)) >= 0 && hex(s.charAt(i + 2)) >= 0) {
                out.write(hex(s.charAt(i + 1)) * 16 + hex(s.charAt(i + 2)));
                i += 2;
            } else {
                out.write(c < 256 ? c : '?');
            }
        }
        return out.toByteArray();
    }

    private static int hex(char c) {
        return Character.digit(c, 16);
    }

    private static Charset charset(String contentType) {
        Matcher m = CHARSET.matcher(contentType);
        if (m.find()) {
            try {
                return Charset.forName(m.group(1));
            } catch (IllegalArgumentException e) {
                // unknown or illegal name: fall through
            }
        }
        return StandardCharsets.ISO_8859_1;
    }

    /** HTML to text: scripts, styles and comments dropped, block tags to line breaks, tags removed, entities replaced. */
    static String stripHtml(String html) {
        String s = HTML_DROP.matcher(html).replaceAll(" ");
        s = HTML_BREAK.matcher(s).replaceAll("\n");
        s = HTML_TAG.matcher(s).replaceAll(" ");
        s = s.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
                .replace("&#39;", "'").replace("&apos;", "'");
        Matcher m = NUMERIC_ENTITY.matcher(s);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            int cp = Integer.parseInt(m.group(2), m.group(1).isEmpty() ? 10 : 16);
            m.appendReplacement(sb, Matcher.quoteReplacement(Character.isValidCodePoint(cp)
                    ? new String(Character.toChars(cp)) : " "));
        }
        m.appendTail(sb);
        return sb.toString().replace("&amp;", "&");
    }

    /** RFC 2047 encoded words ({@code =?charset?Q|B?text?=}) decoded; anything malformed kept as it is. */
    static String decodeWords(String header) {
        Matcher m = ENCODED_WORD.matcher(header);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String decoded;
            try {
                Charset cs = Charset.forName(m.group(1));
                byte[] bytes = m.group(2).equalsIgnoreCase("B") ? Base64.getMimeDecoder().decode(m.group(3))
                        : quotedPrintable(m.group(3).replace('_', ' '));
                decoded = new String(bytes, cs);
            } catch (IllegalArgumentException e) {
                decoded = m.group();
            }
            m.appendReplacement(sb, Matcher.quoteReplacement(decoded));
        }
        m.appendTail(sb);
        return sb.toString();
    }
}
