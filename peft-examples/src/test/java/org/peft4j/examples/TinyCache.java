package org.peft4j.examples;

import java.nio.file.Path;

/**
 * One pretrained-model cache for the examples' tiny tests that share their settings (the long-context
 * and multitask prompt tests), under the module's {@code target} directory, so the tiny decoder is
 * pretrained once per build rather than once per test.
 */
final class TinyCache {

    static final Path DIR = Path.of("target", "tiny-pretrained");

    private TinyCache() {
    }
}
