package org.peft4j.core.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/** Builds safetensors byte sequences by hand, including broken ones, for the reader tests. */
final class TestFiles {

    private TestFiles() {
    }

    /** 8-byte little-endian length, the header bytes exactly as given, then the data. */
    static byte[] withHeader(byte[] header, byte[] data) {
        return withClaimedLength(header.length, header, data);
    }

    /** Like {@link #withHeader(byte[], byte[])} with {@code dataLength} zero bytes of data. */
    static byte[] withHeader(String headerJson, int dataLength) {
        return withHeader(headerJson.getBytes(StandardCharsets.UTF_8), new byte[dataLength]);
    }

    /** A length field claiming {@code claimed} bytes, whatever actually follows. */
    static byte[] withClaimedLength(long claimed, byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(claimed).put(header).put(data);
        return b.array();
    }

    /** One tensor entry as JSON. */
    static String entry(String name, String dtype, String shape, long begin, long end) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape
                + ",\"data_offsets\":[" + begin + "," + end + "]}";
    }
}
