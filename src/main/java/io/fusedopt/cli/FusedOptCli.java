package io.fusedopt.cli;

import io.fusedopt.BackendUnavailableException;
import io.fusedopt.CudaException;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The command line: {@code java --add-modules jdk.incubator.vector -jar fusedopt-cli.jar
 * selftest|bench|demo [options]}; {@code --help} on each lists its options.
 *
 * <p>Errors are one line on standard error, never a stack trace: an option whose value is refused
 * (checked before any work) exits with status 2, picocli's usage-error status; a run that this
 * machine cannot do or that fails while it runs exits with status 1. Only a defect of fusedopt
 * itself (an exception no check anticipated) prints its stack trace, to be reported.
 */
@Command(name = "fusedopt", mixinStandardHelpOptions = true, versionProvider = FusedOptCli.Version.class,
        subcommands = {SelfTestCommand.class, BenchCommand.class, DemoCommand.class},
        description = "Fused optimizer updates on CUDA and the CPU: check them, measure them, see what they do.",
        exitCodeListHeading = "%nExit status:%n",
        exitCodeList = {"0:done (selftest: every comparison bit-exact)",
            "1:the run failed or cannot run on this machine (selftest: a comparison differs)",
            "2:an option was refused: the message names it and what it accepts"})
public final class FusedOptCli implements Runnable {
    /** Exit status of a run that failed or cannot be done here (picocli's own for usage errors is 2). */
    static final int FAILED = 1;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs the command line and returns its exit status. */
    public static int execute(String... args) {
        return execute(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
    }

    /** Runs the command line with its output and errors written to the given writers (tests). */
    public static int execute(PrintWriter out, PrintWriter err, String... args) {
        System.setProperty("java.awt.headless", "true"); // charts are drawn off-screen
        CommandLine commandLine = new CommandLine(new FusedOptCli()).setOut(out).setErr(err)
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setParameterExceptionHandler(FusedOptCli::usageError)
                .setExecutionExceptionHandler((e, failed, parseResult) -> runFailure(e, failed));
        try (LibraryLog log = LibraryLog.showOn(err)) {
            return commandLine.execute(args);
        } catch (OutOfMemoryError e) {
            // picocli passes only Exceptions to the handler; an Error leaves execute().
            err.println("fusedopt: out of memory: " + e.getMessage());
            err.flush();
            return FAILED;
        }
    }

    /** The message on one line, and where to read what the command accepts; no usage dump. */
    private static int usageError(CommandLine.ParameterException e, String[] args) {
        CommandLine failed = e.getCommandLine();
        PrintWriter err = failed.getErr();
        err.println(failed.getCommandSpec().qualifiedName() + ": " + e.getMessage());
        CommandLine.UnmatchedArgumentException.printSuggestions(e, err);
        err.println("Try '" + failed.getCommandSpec().qualifiedName() + " --help' for more information.");
        err.flush();
        return failed.getCommandSpec().exitCodeOnInvalidInput();
    }

    private static int runFailure(Exception e, CommandLine failed) {
        PrintWriter err = failed.getErr();
        String command = failed.getCommandSpec().qualifiedName();
        String message = describe(e);
        if (message != null) {
            err.println(command + ": " + message);
        } else {
            err.println(command + ": internal error (a defect of fusedopt; please report it with this output):");
            e.printStackTrace(err);
        }
        err.flush();
        return FAILED;
    }

    /** A one-line account of an anticipated failure, or null for one no check anticipated (a defect). */
    static String describe(Throwable e) {
        if (e instanceof CommandFailure || e instanceof BackendUnavailableException || e instanceof CudaException) {
            return e.getMessage();
        }
        if (e instanceof UncheckedIOException u) return describe(u.getCause());
        if (e instanceof FileSystemException f) {
            String why = f instanceof NoSuchFileException ? "no such file or folder"
                    : f instanceof AccessDeniedException ? "permission denied"
                    : f instanceof NotDirectoryException ? "not a folder"
                    : f.getReason() != null ? f.getReason() : "file system error";
            return "cannot write " + f.getFile() + (f.getOtherFile() != null ? " or " + f.getOtherFile() : "") + ": " + why;
        }
        if (e instanceof IOException) return "I/O error: " + e.getMessage();
        return null;
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "name a subcommand: selftest, bench or demo");
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = FusedOptCli.class.getPackage().getImplementationVersion();
            return new String[] {"fusedopt " + (v == null ? "(development build)" : v)};
        }
    }
}
