package org.peft4j.core.testing;

import java.util.Map;
import java.util.Set;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.gradient.Gradient;
import org.deeplearning4j.nn.workspace.ArrayType;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.peft4j.core.BiasMode;
import org.peft4j.core.FrozenBaseLayer;
import org.peft4j.core.FrozenConvolutionLayer;
import org.peft4j.core.FrozenDenseLayer;
import org.peft4j.core.FrozenEmbeddingLayer;
import org.peft4j.core.PeftConfig;
import org.peft4j.core.Target;
import org.peft4j.core.TargetKind;
import org.peft4j.core.TargetModules;
import org.peft4j.core.Targeting;
import org.peft4j.core.spi.FrozenConvolutionLayerImpl;
import org.peft4j.core.spi.FrozenEmbeddingLayerImpl;

/**
 * A tuner for tests of the frozen base layers of every kind: a full-rank trainable change of the
 * weight, {@code delta} (zero at init), added in the layer's row form. For a convolution
 * {@code z += X·D} with {@code D [nIn·kH·kW, nOut]}, merged {@code W' = W + Dᵀ} in the stock
 * layout {@code [nOut, nIn, kH, kW]}; for an embedding {@code z += D[i]} with
 * {@code D [vocab, nOut]}, merged {@code W' = W + D}. Its layers live outside core's packages and
 * use only the public API and the spi, as a third party's tuner would.
 */
public final class DeltaTuner implements PeftConfig {

    /** Parameter key of {@code D}. */
    public static final String DELTA = "delta";

    private final Targeting targeting;

    /** Targets {@code names} (embeddings or convolutions) with {@code bias} training. */
    public DeltaTuner(BiasMode bias, String... names) {
        this.targeting = Targeting.builder(Targeting.Scope.TARGETS_AND_BIAS).targetModules(TargetModules.names(names))
                .bias(bias).build();
    }

    @Override
    public String peftType() {
        return "TEST_DELTA";
    }

    @Override
    public Targeting targeting() {
        return targeting;
    }

    @Override
    public Set<TargetKind> supportedTargetKinds() {
        return Set.of(TargetKind.EMBEDDING, TargetKind.CONVOLUTION);
    }

    @Override
    public FrozenBaseLayer adapt(Target target) {
        return target.kind() == TargetKind.EMBEDDING ? new Embedding(target) : new Convolution(target);
    }

    @Override
    public FrozenDenseLayer freeze(Target target) {
        return new FrozenDenseLayer(target);
    }

    /** The convolution with a delta kernel. */
    public static class Convolution extends FrozenConvolutionLayer {
        private static final long serialVersionUID = 1L;

        protected Convolution() {
        }

        Convolution(Target target) {
            super(target);
        }

        private long columns() {
            long[] w = weightShape();
            return w[1] * w[2] * w[3];
        }

        @Override
        public boolean hasAdapter() {
            return true;
        }

        @Override
        public Map<String, long[]> paramShapes() {
            Map<String, long[]> m = super.paramShapes();
            m.put(DELTA, new long[] {columns(), nOut});
            return m;
        }

        @Override
        public boolean isWeightParam(String key) {
            return DELTA.equals(key);
        }

        @Override
        public void initParam(String key, INDArray view) {
            if (DELTA.equals(key)) {
                view.assign(0);
            } else {
                super.initParam(key, view);
            }
        }

        @Override
        public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
            return base.add(params.get(DELTA).transpose().dup('c').reshape('c', base.shape()).castTo(base.dataType()));
        }

        @Override
        protected FrozenConvolutionLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
            return new FrozenConvolutionLayerImpl(conf, dataType) {
                private static final long serialVersionUID = 1L;

                @Override
                protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                                LayerWorkspaceMgr mgr) {
                    Nd4j.gemm(x, params.get(DELTA), z, false, false, 1.0, 1.0);
                }

                @Override
                protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut,
                                               LayerWorkspaceMgr mgr) {
                    INDArray gd = gradientViews.get(DELTA);
                    Nd4j.gemm(x, delta, gd, true, false, 1.0, 0.0);
                    g.gradientForVariable().put(DELTA, gd);
                    if (epsOut != null) {
                        Nd4j.gemm(delta, params.get(DELTA), epsOut, false, true, 1.0, 1.0);
                    }
                }
            };
        }
    }

    /** The embedding with a delta table. */
    public static class Embedding extends FrozenEmbeddingLayer {
        private static final long serialVersionUID = 1L;

        protected Embedding() {
        }

        Embedding(Target target) {
            super(target);
        }

        @Override
        public boolean hasAdapter() {
            return true;
        }

        @Override
        public Map<String, long[]> paramShapes() {
            Map<String, long[]> m = super.paramShapes();
            m.put(DELTA, new long[] {vocabularySize(), nOut});
            return m;
        }

        @Override
        public boolean isWeightParam(String key) {
            return DELTA.equals(key);
        }

        @Override
        public void initParam(String key, INDArray view) {
            if (DELTA.equals(key)) {
                view.assign(0);
            } else {
                super.initParam(key, view);
            }
        }

        @Override
        public INDArray mergedWeight(INDArray base, Map<String, INDArray> params) {
            return base.add(params.get(DELTA).castTo(base.dataType()));
        }

        @Override
        protected FrozenEmbeddingLayerImpl newImpl(NeuralNetConfiguration conf, DataType dataType) {
            return new FrozenEmbeddingLayerImpl(conf, dataType) {
                private static final long serialVersionUID = 1L;

                /** One-hot rows of the current indices, {@code [rows, vocab]}. */
                private INDArray oneHot(LayerWorkspaceMgr mgr, ArrayType type) {
                    int[] idx = indices();
                    INDArray h = mgr.create(type, dataType, new long[] {idx.length, params.get(DELTA).size(0)}, 'c');
                    for (int i = 0; i < idx.length; i++) {
                        h.putScalar(i, idx[i], 1.0);
                    }
                    return h;
                }

                @Override
                protected void addAdapterOutput(INDArray x, INDArray z, boolean training, boolean forBackprop,
                                                LayerWorkspaceMgr mgr) {
                    Nd4j.gemm(oneHot(mgr, ArrayType.FF_WORKING_MEM), params.get(DELTA), z, false, false, 1.0, 1.0);
                }

                @Override
                protected void adapterBackward(INDArray x, INDArray delta, Gradient g, INDArray epsOut,
                                               LayerWorkspaceMgr mgr) {
                    INDArray gd = gradientViews.get(DELTA);
                    Nd4j.gemm(oneHot(mgr, ArrayType.BP_WORKING_MEM), delta, gd, true, false, 1.0, 0.0);
                    g.gradientForVariable().put(DELTA, gd);
                }
            };
        }
    }
}
