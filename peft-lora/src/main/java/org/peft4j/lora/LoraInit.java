package org.peft4j.lora;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * How the LoRA factor {@code A} of a dense or convolution target is initialised ({@code B} always
 * starts at zero, so a fresh adapter changes nothing). Names as in Hugging Face PEFT's
 * {@code init_lora_weights}.
 *
 * <ul>
 *   <li>{@link #KAIMING_UNIFORM} ({@code true} in PEFT, the default): {@code A ~ U(-1/√fanIn, 1/√fanIn)},
 *       PyTorch's {@code kaiming_uniform_(a=√5)} on a {@code [r, nIn]} weight ({@code fanIn = nIn};
 *       for a convolution {@code nIn·kH·kW}).</li>
 *   <li>{@link #GAUSSIAN} ({@code "gaussian"}): {@code A ~ N(0, (1/r)²)}, as in the LoRA paper.</li>
 * </ul>
 * An embedding target ignores the choice and starts, as in PEFT, with {@code A = 0} and
 * {@code B ~ N(0, 1)}.
 *
 * <p>PEFT's other values are not offered here: {@code "pissa"}, {@code "olora"}, {@code "corda"},
 * {@code "loftq"} and {@code "lora_ga"} rewrite the base weights (files made with them are refused
 * on load), and {@code "eva"}, {@code "orthogonal"}, {@code "mica"} and {@code false} only choose
 * starting values that a file's tensors replace, so their files load as plain LoRA.
 *
 * <p>Thread-safety: immutable.
 */
public enum LoraInit {
    KAIMING_UNIFORM,
    GAUSSIAN;

    /** Writes this initialisation of a factor {@code A} of rank {@code rank} and fan-in {@code fanIn} into {@code view}. */
    void initA(INDArray view, long fanIn, int rank) {
        if (this == GAUSSIAN) {
            view.assign(Nd4j.randn(view.dataType(), view.shape()).muli(1.0 / rank));
        } else {
            double bound = 1.0 / Math.sqrt(fanIn);
            view.assign(Nd4j.rand(view.dataType(), view.shape()).muli(2 * bound).subi(bound));
        }
    }
}
