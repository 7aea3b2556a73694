package org.peft4j.lora.lokr;

/**
 * How LoKr's factors start, Hugging Face PEFT's {@code init_weights}. Every factor not named here
 * starts Kaiming-uniform ({@code U(−1/√fan_in, 1/√fan_in)}, PyTorch's {@code kaiming_uniform_(a=√5)}).
 *
 * <ul>
 *   <li>{@link #ZERO_W1} ({@code true}, the default): {@code lokr_w1 = 0} (or {@code lokr_w1_a = 0}),
 *       so a fresh adapter changes nothing;</li>
 *   <li>{@link #ZERO_W2} ({@code "lycoris"}, as the LyCORIS repository does it): {@code lokr_w2 = 0}
 *       (or {@code lokr_w2_b = 0}), also an identity at start;</li>
 *   <li>{@link #RANDOM} ({@code false}): no factor is zero, so the model's outputs change at once
 *       (PEFT discourages it).</li>
 * </ul>
 *
 * <p>Thread-safety: immutable.
 */
public enum LoKrInit {
    ZERO_W1(Boolean.TRUE),
    ZERO_W2("lycoris"),
    RANDOM(Boolean.FALSE);

    private final Object json;

    LoKrInit(Object json) {
        this.json = json;
    }

    /** The value of {@code init_weights} in {@code adapter_config.json}: true, {@code "lycoris"} or false. */
    public Object jsonValue() {
        return json;
    }

    /**
     * The init of an {@code init_weights} value.
     *
     * @throws IllegalArgumentException for anything but true, false and {@code "lycoris"}
     */
    public static LoKrInit fromJson(Object value) {
        for (LoKrInit i : values()) {
            if (i.json.equals(value)) {
                return i;
            }
        }
        throw new IllegalArgumentException("init_weights must be true, false or \"lycoris\"; got " + value);
    }
}
