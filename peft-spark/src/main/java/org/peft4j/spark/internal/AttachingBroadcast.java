package org.peft4j.spark.internal;

import org.apache.spark.broadcast.Broadcast;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.spark.api.worker.NetBroadcastTuple;
import scala.reflect.ClassTag$;

/**
 * The view DL4J's parameter-averaging worker reads its network from: the broadcast tuple of
 * configuration (sent without frozen state), parameters and optimizer state, with the frozen
 * state of a second, long-lived broadcast attached to a fresh copy of the configuration at
 * every read. It replaces the one broadcast handle the worker holds, so everything else the
 * worker does (listeners, training hooks, statistics) stays DL4J's.
 *
 * <p>It is a handle like any Spark broadcast (serialized into the task, resolved on the
 * executor); unpersisting or destroying it does so to the per-synchronisation tuple only, never
 * to the frozen state.
 *
 * <p>Thread-safety: {@link #value()} may be called by several tasks of an executor at once;
 * each call attaches to its own copy of the configuration.
 */
public final class AttachingBroadcast extends Broadcast<NetBroadcastTuple> {
    private static final long serialVersionUID = 1L;

    private final Broadcast<NetBroadcastTuple> stripped;
    private final Broadcast<FrozenBase> frozen;

    public AttachingBroadcast(Broadcast<NetBroadcastTuple> stripped, Broadcast<FrozenBase> frozen) {
        super(stripped.id(), ClassTag$.MODULE$.apply(NetBroadcastTuple.class));
        this.stripped = stripped;
        this.frozen = frozen;
    }

    @Override
    public NetBroadcastTuple getValue() {
        NetBroadcastTuple t = stripped.value();
        ComputationGraphConfiguration conf = t.getGraphConfiguration().clone();
        frozen.value().attachTo(conf);
        return new NetBroadcastTuple(null, conf, t.getParameters(), t.getUpdaterState(), t.getCounter());
    }

    @Override
    public void doUnpersist(boolean blocking) {
        stripped.unpersist(blocking);
    }

    @Override
    public void doDestroy(boolean blocking) {
        stripped.destroy();
    }
}
