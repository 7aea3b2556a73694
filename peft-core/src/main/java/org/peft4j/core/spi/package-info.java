/**
 * The service-provider interface of peft4j's core: what a tuner living in its own package or
 * Maven module (peft-lora, peft-quant, or a third party's) builds on, beyond the public API of
 * {@code org.peft4j.core} that users call.
 *
 * <p>A tuner is a {@link org.peft4j.core.PeftConfig} (registered for files by a
 * {@link org.peft4j.core.PeftConfigFactory} service line) whose layers extend the frozen base
 * layers of {@code org.peft4j.core} and whose implementations extend the ones here, for example
 * {@link org.peft4j.core.spi.FrozenDenseLayerImpl}: the base computation, backward pass and the
 * hooks a tuner overrides. The other classes are the shared pieces tuners need for their configs
 * and files: typed reads of {@code adapter_config.json} keys ({@link org.peft4j.core.spi.ConfigJson}),
 * JSON in Hugging Face PEFT's style ({@link org.peft4j.core.spi.PeftJson}), the keys of peft4j's
 * extension object ({@link org.peft4j.core.spi.AdapterFileKeys}), heap access to small float
 * matrices ({@link org.peft4j.core.spi.DenseFloats}), OpenBLAS called directly on the host buffers
 * of float32 arrays for hand-written kernels ({@link org.peft4j.core.spi.HostBlas}) and for an
 * adapter branch's products ({@link org.peft4j.core.spi.AdapterGemm}), the base of
 * layers a tuner inserts into a graph ({@link org.peft4j.core.spi.BaseTunerLayer}) and reading
 * layer configurations out of a graph ({@link org.peft4j.core.spi.Vertices}).
 *
 * <p><b>Stability.</b> Everything public here is meant to be used from other modules and changes
 * only deliberately: a change that breaks a tuner built on it is named in the changelog, with what
 * to do instead. Protected hooks of the implementation classes are part of that promise, their
 * private fields and the order in which hooks are called within one pass are not. Nothing in
 * {@code org.peft4j.core.internal} is: other modules must not import it (their builds check
 * that), and it may change in any release.
 */
package org.peft4j.core.spi;
