package org.peft4j.quant.internal;

import java.io.IOException;
import org.nd4j.shade.jackson.core.JsonGenerator;
import org.nd4j.shade.jackson.core.JsonParser;
import org.nd4j.shade.jackson.databind.DeserializationContext;
import org.nd4j.shade.jackson.databind.JsonDeserializer;
import org.nd4j.shade.jackson.databind.JsonNode;
import org.nd4j.shade.jackson.databind.JsonSerializer;
import org.nd4j.shade.jackson.databind.SerializerProvider;
import org.peft4j.quant.QuantType;
import org.peft4j.quant.QuantizedTensor;

/**
 * Jackson (ND4J's shaded copy) form of a {@link QuantizedTensor}, so that 4-bit weights held in a
 * layer configuration survive DL4J's configuration JSON, {@code clone()} and
 * {@code ModelSerializer}: type, block size, shape, the packed codes as base64, and the block
 * scales (plain floats, or 8-bit codes + nested floats + offset when double-quantized, plus the
 * code map when it is not the signed dynamic map).
 *
 * <p>Thread-safety: stateless.
 */
public final class QuantizedTensorJson {

    private QuantizedTensorJson() {
    }

    /** Writes a tensor. */
    public static final class Serializer extends JsonSerializer<QuantizedTensor> {
        @Override
        public void serialize(QuantizedTensor t, JsonGenerator g, SerializerProvider p) throws IOException {
            g.writeStartObject();
            g.writeStringField("type", t.type().bitsandbytesName());
            g.writeNumberField("blockSize", t.blockSize());
            g.writeArrayFieldStart("shape");
            for (long s : t.shape()) {
                g.writeNumber(s);
            }
            g.writeEndArray();
            g.writeBinaryField("packed", t.packedCodes());
            if (t.isDoubleQuantized()) {
                g.writeBinaryField("absmaxCodes", t.absmaxCodes());
                writeFloats(g, "nestedAbsmax", t.nestedAbsmax());
                g.writeNumberField("offset", t.offset());
                float[] map = t.nestedQuantMap();
                if (!java.util.Arrays.equals(map, CodeTables.DYNAMIC8)) {
                    writeFloats(g, "nestedQuantMap", map);
                }
            } else {
                writeFloats(g, "absmax", t.absmax());
            }
            g.writeEndObject();
        }

        private static void writeFloats(JsonGenerator g, String name, float[] v) throws IOException {
            g.writeArrayFieldStart(name);
            for (float f : v) {
                g.writeNumber(f);
            }
            g.writeEndArray();
        }
    }

    /** Reads a tensor; malformed input raises an {@link IOException} naming the field. */
    public static final class Deserializer extends JsonDeserializer<QuantizedTensor> {
        @Override
        public QuantizedTensor deserialize(JsonParser jp, DeserializationContext ctx) throws IOException {
            JsonNode n = jp.getCodec().readTree(jp);
            try {
                QuantType type = QuantType.fromBitsandbytesName(n.get("type").asText());
                int blockSize = n.get("blockSize").asInt();
                JsonNode sh = n.get("shape");
                long[] shape = new long[sh.size()];
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = sh.get(i).asLong();
                }
                byte[] packed = n.get("packed").binaryValue();
                if (n.has("absmaxCodes")) {
                    float[] map = n.has("nestedQuantMap") ? floats(n.get("nestedQuantMap")) : CodeTables.DYNAMIC8;
                    return QuantizedTensor.fromParts(type, blockSize, shape, packed, n.get("absmaxCodes").binaryValue(),
                            floats(n.get("nestedAbsmax")), (float) n.get("offset").asDouble(), map);
                }
                return QuantizedTensor.fromParts(type, blockSize, shape, packed, floats(n.get("absmax")));
            } catch (NullPointerException | IllegalArgumentException e) {
                throw new IOException("malformed quantized tensor in layer configuration: " + e.getMessage(), e);
            }
        }

        private static float[] floats(JsonNode a) {
            float[] v = new float[a.size()];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) a.get(i).asDouble();
            }
            return v;
        }
    }
}
