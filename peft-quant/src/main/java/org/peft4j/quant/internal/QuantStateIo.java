package org.peft4j.quant.internal;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.spi.Messages;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafeTensor;
import org.peft4j.quant.QuantType;

/**
 * Maps a 4-bit tensor to and from the safetensors entries bitsandbytes writes for a
 * {@code Linear4bit} weight {@code <prefix>.weight}: the packed codes (U8 {@code [ceil(n/2), 1]}),
 * {@code .absmax} (F32, or the U8 codes when double-quantized), {@code .quant_map} (F32 [16]),
 * {@code .nested_absmax} (F32), {@code .nested_quant_map} (F32 [256]) and
 * {@code .quant_state.bitsandbytes__<type>} (U8 JSON, see {@link QuantStateJson}).
 *
 * <p>Thread-safety: stateless.
 */
public final class QuantStateIo {
    private QuantStateIo() {
    }

    /** Builds the entries; the arrays are copied into the tensors. */
    public static Map<String, SafeTensor> toTensors(String prefix, QuantType type, int blockSize, long[] shape,
                                                    byte[] packed, BlockScales scales) {
        String w = prefix + ".weight";
        Map<String, SafeTensor> out = new LinkedHashMap<>();
        out.put(w, SafeTensor.ofBytes(DType.U8, new long[] {packed.length, 1}, packed));
        if (scales.isNested()) {
            out.put(w + ".absmax", SafeTensor.ofBytes(DType.U8, new long[] {scales.count()}, scales.codesArray()));
        } else {
            out.put(w + ".absmax", SafeTensor.ofFloats(new long[] {scales.count()}, scales.plainArray()));
        }
        out.put(w + ".quant_map", SafeTensor.ofFloats(new long[] {16}, Blockwise4bit.table(type)));
        if (scales.isNested()) {
            out.put(w + ".nested_absmax", SafeTensor.ofFloats(new long[] {scales.nestedArray().length}, scales.nestedArray()));
            out.put(w + ".nested_quant_map", SafeTensor.ofFloats(new long[] {256}, scales.nestedMapArray()));
        }
        byte[] json = QuantStateJson.encode(type, blockSize, shape, scales.isNested(), scales.nestedBlockSize(),
                scales.offset());
        out.put(w + ".quant_state.bitsandbytes__" + type.bitsandbytesName(),
                SafeTensor.ofBytes(DType.U8, new long[] {json.length}, json));
        return out;
    }

    /** The parts read back; the caller builds the tensor (and validates lengths against the shape). */
    public record Parts(QuantType type, int blockSize, long[] shape, byte[] packed, float[] absmax,
                        byte[] absmaxCodes, float[] nestedAbsmax, float[] nestedMap, float offset) {
    }

    /**
     * Reads the entries for {@code prefix}.
     *
     * @throws AdapterFormatException if an entry is missing or has the wrong dtype or size, the
     *                                quant state is malformed, or the stored 4-bit map is not ours
     */
    public static Parts fromTensors(String prefix, Map<String, SafeTensor> tensors) {
        String w = prefix + ".weight";
        SafeTensor stateTensor = null;
        String stateKey = null;
        for (QuantType t : QuantType.values()) {
            String k = w + ".quant_state.bitsandbytes__" + t.bitsandbytesName();
            if (tensors.containsKey(k)) {
                if (stateTensor != null) {
                    throw new AdapterFormatException("both " + stateKey + " and " + k + " are present; expected one quant state");
                }
                stateTensor = tensors.get(k);
                stateKey = k;
            }
        }
        if (stateTensor == null) {
            throw new AdapterFormatException("no quant state for " + w + ": expected " + w
                    + ".quant_state.bitsandbytes__nf4 (or __fp4); keys with this prefix: " + keysWith(tensors, w));
        }
        requireDtype(stateKey, stateTensor, DType.U8);
        QuantStateJson.State state = QuantStateJson.decode(stateTensor.rawBytes(), stateKey);
        if (!stateKey.endsWith("__" + state.type().bitsandbytesName())) {
            throw new AdapterFormatException(stateKey + " says quant_type \"" + state.type().bitsandbytesName()
                    + "\"; the key and the state must agree");
        }
        SafeTensor packedT = require(tensors, w);
        requireDtype(w, packedT, DType.U8);
        SafeTensor absmaxT = require(tensors, w + ".absmax");
        SafeTensor mapT = require(tensors, w + ".quant_map");
        requireDtype(w + ".quant_map", mapT, DType.F32);
        float[] map = mapT.toFloats();
        float[] ours = Blockwise4bit.table(state.type());
        if (map.length != 16 || !closeTo(map, ours, 1e-6f)) {
            throw new AdapterFormatException(w + ".quant_map is " + Arrays.toString(map) + "; expected the "
                    + state.type() + " table " + Arrays.toString(ours));
        }
        if (state.nested()) {
            if (state.nestedBlockSize() != 256) {
                throw new AdapterFormatException(stateKey + " has nested_blocksize " + state.nestedBlockSize()
                        + "; expected 256 (bitsandbytes' 4-bit double quantization)");
            }
            requireDtype(w + ".absmax", absmaxT, DType.U8);
            SafeTensor nestedT = require(tensors, w + ".nested_absmax");
            requireDtype(w + ".nested_absmax", nestedT, DType.F32);
            SafeTensor nestedMapT = require(tensors, w + ".nested_quant_map");
            requireDtype(w + ".nested_quant_map", nestedMapT, DType.F32);
            float[] nestedMap = nestedMapT.toFloats();
            if (nestedMap.length != 256) {
                throw new AdapterFormatException(w + ".nested_quant_map has " + nestedMap.length + " values; expected 256");
            }
            return new Parts(state.type(), state.blockSize(), state.shape(), packedT.rawBytes(), null,
                    absmaxT.rawBytes(), nestedT.toFloats(), nestedMap, state.offset());
        }
        requireDtype(w + ".absmax", absmaxT, DType.F32);
        return new Parts(state.type(), state.blockSize(), state.shape(), packedT.rawBytes(), absmaxT.toFloats(),
                null, null, null, 0f);
    }

    private static boolean closeTo(float[] a, float[] b, float tol) {
        for (int i = 0; i < a.length; i++) {
            if (!(Math.abs(a[i] - b[i]) <= tol)) {
                return false;
            }
        }
        return true;
    }

    private static SafeTensor require(Map<String, SafeTensor> tensors, String key) {
        SafeTensor t = tensors.get(key);
        if (t == null) {
            throw new AdapterFormatException("missing tensor " + key + "; keys with this prefix: "
                    + keysWith(tensors, key.substring(0, key.indexOf(".weight") + 7)));
        }
        return t;
    }

    private static void requireDtype(String key, SafeTensor t, DType expected) {
        if (t.dtype() != expected) {
            throw new AdapterFormatException(key + " has dtype " + t.dtype() + "; expected " + expected);
        }
    }

    private static String keysWith(Map<String, SafeTensor> tensors, String prefix) {
        return Messages.list(tensors.keySet().stream().filter(k -> k.startsWith(prefix)).sorted().toList());
    }
}
