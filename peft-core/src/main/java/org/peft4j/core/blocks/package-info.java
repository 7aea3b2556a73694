/**
 * Transformer building blocks for DL4J 1.0.0-M2.1 with hand-written, gradient-checked backward
 * passes, and builders of a GPT-style decoder and a BERT-style encoder.
 *
 * <ul>
 *   <li>{@link org.peft4j.core.blocks.Transformers#decoder()}: a decoder-only language model as an
 *       ordinary {@code ComputationGraph} whose attention projections are stock dense layers
 *       ({@code block{i}.attn.q/k/v/o}), so every tuner adapts them like any dense layer.</li>
 *   <li>{@link org.peft4j.core.blocks.Transformers#encoder()}: a post-norm, bidirectional BERT-style
 *       encoder with masked mean pooling ({@code pool}) and an optional classifier, with the
 *       decoder's layer names.</li>
 *   <li>{@link org.peft4j.core.blocks.AttentionCore}: the parameter-free multi-head attention vertex
 *       (causal and key-padding masks).</li>
 *   <li>{@link org.peft4j.core.blocks.MultiHeadAttention}: fused attention with the parameter layout
 *       of DL4J's {@code SelfAttentionLayer}, and {@link org.peft4j.core.blocks.Attention#fromStock}
 *       to swap it in (the stock layer's gradients are 2× too large in M2.1).</li>
 *   <li>{@link org.peft4j.core.blocks.LayerNorm}, {@link org.peft4j.core.blocks.RmsNorm},
 *       {@link org.peft4j.core.blocks.PositionalEmbedding}, {@link org.peft4j.core.blocks.ExactGelu}.</li>
 *   <li>{@link org.peft4j.core.blocks.RowsToSequence}: the builders' last step from rows back to a
 *       sequence, DL4J's {@code FeedForwardToRnnPreProcessor} with its float32 copies on the host.</li>
 *   <li>{@link org.peft4j.core.blocks.ResidualAdd}: the builders' residual connections, DL4J's
 *       two-input {@code ElementWiseVertex(Op.Add)} with one add and the shared mask passed on.</li>
 * </ul>
 * Sequences use DL4J's recurrent layout {@code [batch, features, time]} (NCW); masks are DL4J
 * feature masks {@code [batch, time]}, 1 = keep. Inside the graphs of {@code Transformers}, between
 * the positional embedding and the final {@code final.seq} vertex, activations are DL4J's
 * time-distributed rows {@code [batch·time, features]} (row {@code b + batch·t}) with per-row masks
 * {@code [batch·time, 1]}, so that dense layers read them with no conversion; the blocks take both
 * layouts. Parameter keys never contain {@code _}; layer names use dots.
 */
package org.peft4j.core.blocks;
