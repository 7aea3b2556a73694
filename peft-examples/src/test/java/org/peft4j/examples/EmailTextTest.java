package org.peft4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** What the classifier reads of an e-mail: subject and readable body, no headers, no markup. */
class EmailTextTest {

    @Test
    void keepsTheSubjectAndBodyAndDropsEveryOtherHeader() {
        String raw = "From spammer@example.com  Thu Aug 22 13:17:22 2002\n"
                + "Received: from relay (relay [10.1.2.3])\n\tby mx.example.org with ESMTP id 42\n"
                + "Subject: Cheap\n  ink cartridges\n"
                + "Content-Type: text/plain\n\nBuy   now.\n\nToday only.\n";
        assertEquals("Cheap ink cartridges Buy now. Today only.", EmailText.of(raw, 1000));
    }

    @Test
    void multipartAlternativePrefersPlainTextAndDropsAttachments() {
        String raw = "Subject: hello\nContent-Type: multipart/mixed; boundary=\"OUTER\"\n\n"
                + "This is a multi-part message in MIME format.\n"
                + "--OUTER\nContent-Type: multipart/alternative; boundary=INNER\n\n"
                + "--INNER\nContent-Type: text/plain; charset=us-ascii\n\nplain words\n"
                + "--INNER\nContent-Type: text/html\n\n<p>html words</p>\n--INNER--\n"
                + "--OUTER\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n"
                + "--OUTER--\n";
        assertEquals("hello plain words", EmailText.of(raw, 1000));
    }

    @Test
    void decodesQuotedPrintableBase64AndHtml() {
        String qp = "Subject: =?iso-8859-1?Q?Caf=E9_offer?=\nContent-Type: text/html; charset=iso-8859-1\n"
                + "Content-Transfer-Encoding: quoted-printable\n\n"
                + "<html><style>p {color: red}</style><body><p class=3D\"x\">Caf=E9 &amp; cr=\n"
                + "=E8me&nbsp;&#36;5</p><!-- hidden --></body></html>\n";
        assertEquals("Café offer Café & crème $5", EmailText.of(qp, 1000));
        String b64 = "Subject: b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
                + "w6ljb2xlIGV0IG1haXNvbg==\n";
        assertEquals("b école et maison", EmailText.of(b64, 1000));
    }

    @Test
    void cutsToTheCharacterLimitAndSurvivesMalformedInput() {
        String text = EmailText.of("Subject: s\n\n" + "word ".repeat(1000), 50);
        assertEquals(50, text.length());
        assertTrue(text.startsWith("s word word"));
        // no blank line, a boundary that never occurs, bad base64: no exception, something readable
        assertEquals("x", EmailText.of("Subject: x", 100));
        assertEquals("y just text", EmailText.of("Subject: y\nContent-Type: multipart/mixed; boundary=ZZ\n\njust text\n",
                100));
        assertEquals("z", EmailText.of("Subject: z\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n", 100));
    }
}
