package io.fusedopt.cli;

import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The command line: {@code java --add-modules jdk.incubator.vector -jar fusedopt-cli.jar
 * selftest|bench|demo [options]}; {@code --help} on each lists its options.
 */
@Command(name = "fusedopt", mixinStandardHelpOptions = true, versionProvider = FusedOptCli.Version.class,
        subcommands = {SelfTestCommand.class, BenchCommand.class, DemoCommand.class},
        description = "Fused optimizer updates on CUDA and the CPU: check them, measure them, see what they do.")
public final class FusedOptCli implements Runnable {
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
        return new CommandLine(new FusedOptCli()).setOut(out).setErr(err).execute(args);
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
