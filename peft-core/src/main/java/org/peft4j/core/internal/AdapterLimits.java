package org.peft4j.core.internal;

import java.util.ArrayList;
import java.util.List;
import org.peft4j.core.AdapterFormatException;
import org.peft4j.core.io.DType;
import org.peft4j.core.io.SafetensorsHeader;
import org.peft4j.core.io.TensorInfo;
import org.peft4j.core.spi.Messages;

/**
 * What an adapter's weights file may claim before its data is read, so that loading costs memory
 * in proportion to the adapter, not to the file.
 *
 * <ul>
 *   <li><b>Tensor count.</b> An adapter holds a few tensors per layer of its base model (LoRA:
 *       {@code lora_A}, {@code lora_B}, a bias; a saved module: its parameters; a bottleneck adapter:
 *       two weights and two biases per insert point) plus a few model-level ones (prompt and prefix
 *       tuning). {@value #TENSORS_PER_LAYER} per base layer plus {@value #MODEL_TENSORS} is more than
 *       any tuner writes, and keeps a header of millions of entries from being held in memory before
 *       the names are compared with the wrapped graph.</li>
 *   <li><b>Dtypes.</b> Adapter weights are floating-point: {@value #FLOATING_POINT}. F64 is accepted
 *       as Hugging Face PEFT accepts it (a model trained in double precision saves F64) and rounded
 *       to float like F32 values of a float graph; a value beyond the float range is refused when
 *       the data is read. Integer and boolean tensors cannot be adapter weights and are refused
 *       from the header.</li>
 * </ul>
 *
 * <p>Thread-safety: stateless.
 */
public final class AdapterLimits {

    /** Tensors an adapter may hold per layer of its base model. */
    public static final int TENSORS_PER_LAYER = 16;
    /** Model-level tensors an adapter may hold besides those. */
    public static final int MODEL_TENSORS = 64;
    /** The dtypes of adapter weights, for messages. */
    public static final String FLOATING_POINT = "F32, F16, BF16 or F64";

    private AdapterLimits() {
    }

    /** The most tensors an adapter file for {@code base} may list. */
    public static int maxTensors(BaseFingerprint base) {
        long n = (long) TENSORS_PER_LAYER * base.layers().size() + MODEL_TENSORS;
        return (int) Math.min(Integer.MAX_VALUE, n);
    }

    /** Why {@link #maxTensors} is the limit, for the message that refuses a longer header. */
    public static String maxTensorsReason(BaseFingerprint base) {
        return "an adapter for this base model (" + base.layers().size() + " layers) holds at most "
                + maxTensors(base) + " (" + TENSORS_PER_LAYER + " per layer and " + MODEL_TENSORS
                + " more); the file is not an adapter for it";
    }

    /** Whether adapter weights may have this dtype. */
    public static boolean isFloatingPoint(DType t) {
        return t == DType.F32 || t == DType.F16 || t == DType.BF16 || t == DType.F64;
    }

    /**
     * Refuses a header listing a tensor that is not floating-point.
     *
     * @throws AdapterFormatException naming the first such tensors and their dtypes
     */
    public static void requireFloatingPoint(SafetensorsHeader header) {
        List<String> wrong = new ArrayList<>();
        for (TensorInfo t : header.tensors().values()) {
            if (!isFloatingPoint(t.dtype())) {
                wrong.add(t.name() + " (" + t.dtype() + ")");
            }
        }
        if (!wrong.isEmpty()) {
            throw new AdapterFormatException(header.source() + ": " + wrong.size() + " tensors are not floating-point: "
                    + Messages.list(wrong) + "; adapter weights must be " + FLOATING_POINT);
        }
    }
}
