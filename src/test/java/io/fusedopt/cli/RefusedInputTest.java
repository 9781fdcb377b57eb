package io.fusedopt.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CudaProbe;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every input the command line refuses: one message on standard error that names the option and
 * what it accepts, exit status 2 for a refused option value and 1 for a run this machine cannot
 * do, no stack trace, no output, and nothing written.
 */
class RefusedInputTest {
    @TempDir
    Path dir;

    private record Run(int status, String out, String err) {}

    private static Run cli(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int status = FusedOptCli.execute(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Run(status, out.toString(), err.toString());
    }

    /** Runs {@code args} and checks the refusal's form; returns the message for the caller's checks. */
    private static String refused(int status, String option, String... args) {
        Run run = cli(args);
        String all = String.join(" ", args) + "\nstdout: " + run.out() + "\nstderr: " + run.err();
        assertEquals(status, run.status(), all);
        assertFalse(run.err().contains("Exception"), all);
        assertFalse(run.err().contains("at io.fusedopt") || run.err().contains("\tat "), "no stack trace: " + all);
        assertTrue(run.err().contains(option), "names " + option + ": " + all);
        assertEquals("", run.out(), "nothing ran: " + all);
        assertTrue(run.err().lines().count() <= 3, "one message, not a usage dump: " + all);
        return run.err();
    }

    private static String usageError(String option, String... args) {
        return refused(2, option, args);
    }

    @Test
    void benchSizesThatAreNotAPositiveNumberOrPowerOfTwoAreRefused() {
        for (String size : new String[] {"0", "-1", "abc", "1e6", "2^-1", "2^63", "2^x", "99999999999999999999"}) {
            String err = usageError("--sizes", "bench", "--sizes", size, "--no-progress");
            assertTrue(err.contains("2^k with k from 0 to 62, got '" + size + "'"), err);
        }
    }

    @Test
    void benchSizeTheBackendCannotHoldIsRefusedWithTheLimitBeforeAnyWork() {
        // 2^40 elements: 16 TiB for Adam; no JVM in CI has that much heap.
        long heap = Runtime.getRuntime().maxMemory();
        long limit = heap / (4 * Float.BYTES);
        String err = usageError("--sizes", "bench", "--backend", "CPU_FAST", "--algorithms", "sgd,adam", "--sizes", "4096,2^40",
                "--no-progress");
        assertTrue(err.contains("2^40 (1099511627776 elements) does not fit CPU_FAST: adam keeps 4 float32 tensors"), err);
        assertTrue(err.contains("the Java heap (-Xmx) holds " + heap + " bytes"), err);
        assertTrue(err.contains("at most " + limit + " elements for adam"), err);
        // The CPU reference keeps a tensor in one Java array: a limit per tensor besides the heap.
        String cpu = usageError("--sizes", "bench", "--backend", "cpu", "--algorithms", "sgd", "--sizes", "2^31", "--no-progress");
        assertTrue(cpu.contains("does not fit CPU: sgd keeps 2 float32 tensors"), cpu);
        assertTrue(cpu.contains("one tensor at most 2147483639 elements"), cpu);
    }

    @Test
    void benchCountsOutsideTheirRangeAreRefused() {
        String[][] cases = {
            {"--steps", "0", "must be at least 1, got 0"},
            {"--repetitions", "0", "must be at least 1, got 0"},
            {"--warmup", "-1", "must be at least 0, got -1"},
            {"--warmup-ms", "-5", "must be at least 0, got -5"},
        };
        for (String[] c : cases) {
            String err = usageError(c[0], "bench", c[0], c[1], "--no-progress");
            assertTrue(err.contains("Invalid value for option '" + c[0] + "': " + c[2]), err);
        }
        String err = usageError("--warmup-max-ms", "bench", "--warmup-ms", "100", "--warmup-max-ms", "50", "--no-progress");
        assertTrue(err.contains("must be at least --warmup-ms (100), got 50"), err);
        assertTrue(usageError("--steps", "bench", "--steps", "3000000000").contains("is not an int"), "picocli's own conversion");
    }

    @Test
    void unknownAlgorithmBackendAndOptionAreRefusedNamingWhatIsAccepted() {
        String algorithm = usageError("--algorithms", "bench", "--algorithms", "adam,frobnicator", "--no-progress");
        assertTrue(algorithm.contains("unknown algorithm 'frobnicator'; known: " + String.join(", ", VariantCatalog.BENCHMARK_ALGORITHMS)),
                algorithm);
        assertTrue(VariantCatalog.BENCHMARK_ALGORITHMS.containsAll(java.util.List.of("adam", "adamw", "rmsprop", "momentum", "sgd", "adagrad")));
        for (String command : new String[] {"bench", "demo"}) {
            String backend = usageError("--backend", command, "--backend", "gpu");
            assertTrue(backend.contains("expected one of [CPU, CPU_FAST, CUDA, AUTO] (case-insensitive) but was 'gpu'"), backend);
        }
        assertTrue(usageError("--frobnicate", "bench", "--frobnicate").contains("Unknown option"));
        assertTrue(usageError("name a subcommand").contains("selftest, bench or demo"));
    }

    /** picocli formats every description with String.format: a bare '%' makes it warn on standard error. */
    @Test
    void helpOfEveryCommandFormatsWithoutAWarning() {
        java.io.PrintStream before = System.err;
        java.io.ByteArrayOutputStream stderr = new java.io.ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(stderr, true));
        try {
            for (String[] args : new String[][] {{"--help"}, {"selftest", "--help"}, {"bench", "--help"}, {"demo", "--help"}}) {
                Run run = cli(args);
                assertEquals(0, run.status(), String.join(" ", args) + ": " + run.err());
                assertEquals("", run.err(), String.join(" ", args));
            }
        } finally {
            System.setErr(before);
        }
        // In the whole suite CheckpointFuzzTest's Jazzer agent shares this JVM and reports each class it
        // instruments (picocli's help classes, loaded here) on System.err; those lines are not picocli's.
        String warnings = stderr.toString().lines().filter(line -> !line.startsWith("INFO: Instrumented "))
                .collect(java.util.stream.Collectors.joining("\n"));
        assertEquals("", warnings, "picocli's own warnings go to System.err");
        assertTrue(cli("bench", "--help").out().contains("within " + Bench.STABLE_PERCENT + "% of each other"), "the % is printed");
    }

    /** --algorithms, like --backend, takes its names in any case; the table names them as the library does. */
    @Test
    void backendAndAlgorithmNamesAreAcceptedInAnyCase() {
        Run run = cli("bench", "--backend", "cpu_Fast", "--algorithms", "SGD,AdamW", "--sizes", "64", "--warmup", "0", "--warmup-ms", "0",
                "--warmup-max-ms", "0", "--repetitions", "1", "--steps", "1", "--no-progress");
        assertEquals(0, run.status(), run.out() + run.err());
        assertTrue(run.out().contains("sgd                 64 CPU_FAST"), run.out());
        assertTrue(run.out().contains("adamw               64 CPU_FAST"), run.out());
    }

    @Test
    void selftestThatWouldCompareNothingOrCannotFitIsRefused() {
        String steps = usageError("--steps", "selftest", "--steps", "0");
        assertTrue(steps.contains("must be at least 1, got 0"), steps);
        for (String size : new String[] {"-1", "0", "abc", "2^63"}) {
            String err = usageError("--size", "selftest", "--size", size);
            assertTrue(err.contains("expected a positive whole number or 2^k with k from 0 to 62, got '" + size + "'"), err);
        }
        String err = usageError("--size", "selftest", "--size", "2147483647");
        assertTrue(err.contains("must be from 1 to "), err);
        assertTrue(err.contains(", got 2147483647"), err);
    }

    /** selftest reads --size as bench reads --sizes: 2^k is a size, refused for what it is (too large), not "not an int". */
    @Test
    void selftestSizeIsReadAsBenchReadsSizes() {
        String err = usageError("--size", "selftest", "--size", "2^40");
        assertFalse(err.contains("not an int"), err);
        assertTrue(err.contains("must be from 1 to "), err);
        assertTrue(err.contains(", got 1099511627776"), err);
    }

    /**
     * A folder that passes every check and still cannot be created (as root every folder is
     * writable, but /proc refuses new entries) is a refused option value, exit status 2, before
     * any work: not a failure after the run, exit status 1.
     */
    @Test
    void anOutputFolderThatCannotBeCreatedIsARefusedValue() {
        Path proc = Path.of("/proc");
        assumeTrue(Files.isDirectory(proc), "needs Linux's /proc, a folder in which no folder can be created");
        Path demoOut = proc.resolve("fusedopt-cannot-exist/demo");
        String demo = usageError("--out", "demo", "--backend", "CPU", "--spiral-steps", "1", "--out", demoOut.toString());
        assertTrue(demo.contains("Invalid value for option '--out'"), demo);
        Path csv = proc.resolve("fusedopt-cannot-exist/bench.csv");
        String bench = usageError("--csv", "bench", "--backend", "CPU", "--algorithms", "sgd", "--sizes", "64", "--no-progress",
                "--csv", csv.toString());
        assertTrue(bench.contains("Invalid value for option '--csv'"), bench);
    }

    /** The verdict of a comparison that compared no element is not a pass, whatever differed. */
    @Test
    void aComparisonOfNothingIsNotBitExact() {
        SelfTest.Verdict nothing = SelfTest.compare(List.of(), List.of());
        assertFalse(nothing.bitExact());
        assertEquals("NOTHING COMPARED", nothing.text());
        assertTrue(SelfTest.compare(List.of(new float[] {1f}), List.of(new float[] {1f})).bitExact());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SelfTest.run(10, 0, 1, false));
        assertTrue(e.getMessage().contains("steps >= 1"), e.getMessage());
    }

    @Test
    void demoSpiralStepsOutsideTheirRangeAreRefused() {
        for (String steps : new String[] {"0", "-3", "100001"}) {
            String err = usageError("--spiral-steps", "demo", "--spiral-steps", steps, "--out", dir.resolve("never").toString());
            assertTrue(err.contains("must be from 1 to 100000 (the loss chart draws every step), got " + steps), err);
        }
        assertFalse(Files.exists(dir.resolve("never")), "nothing created");
    }

    @Test
    void outputFilesAreCheckedBeforeTheRunAndNothingIsWritten() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file.txt"), "x");
        Path folder = Files.createDirectory(dir.resolve("a-folder"));
        String isFolder = usageError("--csv", "bench", "--csv", folder.toString(), "--no-progress");
        assertTrue(isFolder.contains("'" + folder + "' is a folder; name a file"), isFolder);
        String underFile = usageError("--json", "bench", "--json", file.resolve("out.json").toString(), "--no-progress");
        assertTrue(underFile.contains("'" + file + "' is a file, so '" + file.resolve("out.json") + "' cannot be written under it"),
                underFile);
        String deepUnderFile = usageError("--csv", "bench", "--csv", file.resolve("sub/out.csv").toString(), "--no-progress");
        assertTrue(deepUnderFile.contains("'" + file + "' is a file"), deepUnderFile);
        Path same = dir.resolve("same.out");
        String twice = usageError("--json", "bench", "--csv", same.toString(), "--json", same.toString(), "--no-progress");
        assertTrue(twice.contains("is also the --csv file; name two files"), twice);
        assertEquals(List.of(file, folder), list(dir), "nothing written or created");
        assertEquals(List.of(), list(folder));
    }

    @Test
    void aFileInAFolderStillToBeCreatedIsAccepted() throws IOException {
        Path csv = dir.resolve("new/deeper/bench.csv");
        Run run = cli("bench", "--backend", "CPU", "--algorithms", "sgd", "--sizes", "64", "--warmup", "0", "--warmup-ms", "0",
                "--warmup-max-ms", "0", "--repetitions", "1", "--steps", "1", "--no-progress", "--csv", csv.toString());
        assertEquals(0, run.status(), run.out() + run.err());
        assertEquals(3, Files.readAllLines(csv).size(), "the device, the header, one row");
    }

    @Test
    void demoOutputFolderIsCheckedBeforeTheRunAndNothingIsWritten() throws IOException {
        Path file = Files.writeString(dir.resolve("a-file.txt"), "x");
        String isFile = usageError("--out", "demo", "--out", file.toString());
        assertTrue(isFile.contains("'" + file + "' is a file; name a folder"), isFile);
        String underFile = usageError("--out", "demo", "--out", file.resolve("demo").toString());
        assertTrue(underFile.contains("'" + file + "' is a file"), underFile);
        Path out = Files.createDirectory(dir.resolve("out"));
        Path reportIsAFolder = Files.createDirectory(out.resolve(Demo.REPORT));
        String clash = usageError("--out", "demo", "--out", out.toString());
        assertTrue(clash.contains("'" + out.resolve(Demo.REPORT) + "' is a folder; it would be overwritten by a file"), clash);
        assertEquals(List.of(reportIsAFolder), list(out), "no plot written");
    }

    /** Root may write anywhere, so this refusal can only be seen by another user (CI). */
    @Test
    void aFolderThatIsNotWritableIsRefused() throws IOException {
        Path locked = Files.createDirectory(dir.resolve("locked"));
        Files.setPosixFilePermissions(locked, PosixFilePermissions.fromString("r-xr-xr-x"));
        try {
            assumeFalse(Files.isWritable(locked), "running as root: every folder is writable");
            String err = usageError("--csv", "bench", "--csv", locked.resolve("new/out.csv").toString(), "--no-progress");
            assertTrue(err.contains("folder '" + locked + "' is not writable, so"), err);
            String demo = usageError("--out", "demo", "--out", locked.toString());
            assertTrue(demo.contains("folder '" + locked + "' is not writable"), demo);
        } finally {
            Files.setPosixFilePermissions(locked, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
    }

    @Test
    void cudaWithoutAGpuIsAFailureOfThisMachineWithoutAStackTrace() {
        assumeFalse(CudaProbe.result().available(), "this machine has a usable GPU");
        String bench = refused(1, "--backend CUDA", "bench", "--backend", "cuda", "--sizes", "64", "--no-progress");
        assertTrue(bench.contains("no usable GPU: " + CudaProbe.result().reason()), bench);
        Path out = dir.resolve("demo");
        String demo = refused(1, "--backend CUDA", "demo", "--backend", "CUDA", "--out", out.toString());
        assertTrue(demo.contains("use --backend AUTO, CPU_FAST or CPU"), demo);
        assertFalse(Files.exists(out), "nothing created");
    }

    /** What no check anticipates still prints one line when it is a known kind of failure. */
    @Test
    void failuresDuringARunAreDescribedOnOneLine() {
        assertEquals("cannot write /x/y: no such file or folder",
                FusedOptCli.describe(new java.nio.file.NoSuchFileException("/x/y")));
        assertEquals("cannot write /x/y: permission denied",
                FusedOptCli.describe(new java.io.UncheckedIOException(new java.nio.file.AccessDeniedException("/x/y"))));
        assertEquals("the GPU is gone", FusedOptCli.describe(new CommandFailure("the GPU is gone")));
        assertEquals(null, FusedOptCli.describe(new NullPointerException()), "a defect: its stack trace is printed");
    }

    @Test
    void topLevelHelpGivesEachSubcommandAWholeSentence() {
        Run run = cli("--help");
        assertEquals(0, run.status(), run.err());
        String flat = run.out().replaceAll("\\s+", " ");
        for (Class<?> command : new Class<?>[] {SelfTestCommand.class, BenchCommand.class, DemoCommand.class}) {
            picocli.CommandLine.Command annotation = command.getAnnotation(picocli.CommandLine.Command.class);
            String header = String.join(" ", annotation.header());
            assertTrue(header.endsWith("."), annotation.name() + ": " + header);
            assertTrue(flat.contains(annotation.name() + " " + header), "whole header of " + annotation.name() + " in:\n" + run.out());
            for (String paragraph : annotation.description()) {
                assertTrue(paragraph.endsWith("."), annotation.name() + " description ends mid-sentence: " + paragraph);
            }
        }
        assertTrue(flat.contains("Exit status: 0 done"), run.out());
    }

    private static List<Path> list(Path folder) throws IOException {
        try (Stream<Path> files = Files.list(folder)) {
            return files.sorted().toList();
        }
    }
}
