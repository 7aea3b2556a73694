package org.peft4j.examples;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.Properties;
import picocli.CommandLine;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * What the examples' command lines share: {@code -V} prints the library version that adapter
 * files record; a bad flag prints one usage line and then its error, last, so the error is what
 * stays on the screen; a {@link Failure} (a problem the user can fix, such as a wrong data file)
 * prints its one-line message without a stack trace.
 *
 * <p>Thread-safety: stateless.
 */
final class Cli {

    /** Where peft-core keeps the version it writes into adapter files. */
    static final String VERSION_RESOURCE = "/org/peft4j/core/version.properties";

    private Cli() {
    }

    /**
     * A failure whose message says what went wrong and what to do; the examples print the message
     * alone and exit with code 1.
     */
    static final class Failure extends IllegalStateException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }

        Failure(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** A command line for {@code command} with the shared handlers. */
    static CommandLine of(Object command) {
        return new CommandLine(command).setCaseInsensitiveEnumValuesAllowed(true)
                .setParameterExceptionHandler(Cli::badCommandLine)
                .setExecutionExceptionHandler(Cli::failed);
    }

    /** The peft4j version, as adapter files record it ({@code 0.1.0-SNAPSHOT} in a build from source). */
    static String version() {
        try (InputStream in = Cli.class.getResourceAsStream(VERSION_RESOURCE)) {
            if (in == null) {
                return "unknown (peft-core's " + VERSION_RESOURCE + " is not on the classpath)";
            }
            Properties p = new Properties();
            p.load(in);
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    /** {@code -V}: the command's name and the library version. */
    static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"${COMMAND-FULL-NAME} (peft4j " + version() + ")"};
        }
    }

    private static int badCommandLine(ParameterException ex, String[] args) {
        CommandLine cl = ex.getCommandLine();
        PrintWriter err = cl.getErr();
        UnmatchedArgumentException.printSuggestions(ex, err);
        err.println("Usage: " + cl.getCommandName() + " [OPTIONS]   (--help lists every option)");
        err.println(cl.getColorScheme().errorText("Error: " + ex.getMessage()));
        err.flush();
        return cl.getCommandSpec().exitCodeOnInvalidInput();
    }

    private static int failed(Exception ex, CommandLine cl, ParseResult parsed) throws Exception {
        if (!(ex instanceof Failure)) {
            throw ex;
        }
        PrintWriter err = cl.getErr();
        err.println(cl.getColorScheme().errorText("Error: " + ex.getMessage()));
        err.flush();
        return cl.getCommandSpec().exitCodeOnExecutionException();
    }
}
