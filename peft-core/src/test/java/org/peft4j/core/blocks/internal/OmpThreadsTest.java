package org.peft4j.core.blocks.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.lang.invoke.MethodHandle;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

class OmpThreadsTest {

    @Test
    void defaultIsOneThreadUnlessTheUserConfiguredOpenMp() {
        assertEquals(1, OmpThreads.threads("1", Map.of()));
        assertEquals(3, OmpThreads.threads(" 3 ", Map.of()));
        assertEquals(0, OmpThreads.threads("keep", Map.of()));
        assertEquals(0, OmpThreads.threads("KEEP", Map.of()));
        assertEquals(0, OmpThreads.threads("1", Map.of("OMP_NUM_THREADS", "2")));
        assertEquals(0, OmpThreads.threads("1", Map.of("OMP_WAIT_POLICY", "PASSIVE")));
    }

    @Test
    void invalidPropertyIsRejectedWithItsName() {
        for (String bad : new String[] {"0", "-1", "two", ""}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> OmpThreads.threads(bad, Map.of()));
            assertTrue(e.getMessage().contains(OmpThreads.PROPERTY) && e.getMessage().contains("'" + bad + "'"),
                    e.getMessage());
        }
    }

    /**
     * The native call sets the calling thread's OpenMP thread count (its ICV) and no other thread's;
     * 3 differs from the count surefire's environment gives every thread (OMP_NUM_THREADS=1).
     */
    @Test
    void nativeSetterChangesTheCallingThreadOnly() throws Throwable {
        Nd4j.create(1);
        MethodHandle set = OmpThreads.setter();
        assertNotNull(set, "nd4j-native is the test backend: setOmpNumThreads must be found");
        AtomicInteger after = new AtomicInteger();
        AtomicInteger untouched = new AtomicInteger();
        int before = maxThreads();
        Thread t = new Thread(() -> {
            try {
                set.invokeExact(3);
            } catch (Throwable e) {
                throw new IllegalStateException(e);
            }
            after.set(maxThreads());
        });
        t.start();
        t.join();
        Thread other = new Thread(() -> untouched.set(maxThreads()));
        other.start();
        other.join();
        assertEquals(3, after.get());
        assertEquals(before, untouched.get());
        assertEquals(before, maxThreads());
    }

    private static int maxThreads() {
        return NativeOpsHolder.getInstance().getDeviceNativeOps().ompGetMaxThreads();
    }
}
