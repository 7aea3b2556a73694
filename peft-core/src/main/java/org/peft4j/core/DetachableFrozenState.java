package org.peft4j.core;

import org.deeplearning4j.nn.conf.layers.Layer;

/**
 * A layer configuration that holds frozen base arrays as fields (they are not parameters: see
 * {@link FrozenDenseLayer}) and can hand out a copy of itself without them. A data-parallel
 * trainer that sends the configuration to its workers at every synchronisation (DL4J's Spark
 * parameter averaging) sends that copy, ships the frozen arrays once by other means, and
 * re-attaches them on the worker with {@link #attachFrozenState}; the base then crosses the
 * network once per worker instead of once per synchronisation.
 *
 * <p>A copy without its frozen state builds a graph (parameters are unaffected) but must not
 * run forward or backward until the state is attached again.
 *
 * <p>Thread-safety: {@link #withoutFrozenState()} only reads this configuration;
 * {@link #attachFrozenState} writes the copy it is called on, which must not be in use by a
 * graph at the time.
 */
public interface DetachableFrozenState {

    /**
     * A copy of this configuration ({@code clone()}) whose frozen arrays are null; everything
     * else, trainable-parameter layout included, is unchanged. This configuration is not modified.
     */
    Layer withoutFrozenState();

    /**
     * Sets this configuration's frozen arrays to those of {@code source} (by reference: they are
     * shared, never written).
     *
     * @param source a configuration of the same layer, of the same class, that holds its frozen arrays
     * @throws IllegalArgumentException if {@code source} is of another class
     */
    void attachFrozenState(Layer source);
}
