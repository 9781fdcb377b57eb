package io.fusedopt.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Json;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The side-by-side report: its plan, the torch output it reads, medians, targets and the table it writes. */
class CpuReportTest {
    private static final long TOTAL = TensorSets.total(TensorSets.transformer());

    @Test
    void thePlanCoversEveryAlgorithmWithTheTransformerBesideOneTensorOfItsSize() {
        CpuReport.Plan full = CpuReport.Plan.parse();
        assertEquals(2, full.rounds());
        List<CpuReport.Case> cases = full.cases();
        for (String algorithm : CpuReport.ALGORITHMS) {
            for (String storage : List.of("fp32", "bf16-master")) {
                assertTrue(cases.contains(new CpuReport.Case(algorithm, storage, CpuReport.TRANSFORMER)), algorithm + storage);
                assertTrue(cases.contains(new CpuReport.Case(algorithm, storage, "one:" + TOTAL)), algorithm + storage);
            }
            for (int log = 16; log <= 26; log += 2) assertTrue(cases.contains(new CpuReport.Case(algorithm, "fp32", "one:" + (1L << log))));
        }
        assertEquals(168617024L, TOTAL);
        CpuReport.Plan quick = CpuReport.Plan.parse("--quick", "--rounds", "3", "--no-torch", "--out", "x", "--command", "c");
        assertTrue(quick.quick() && !quick.torch());
        assertEquals(3, quick.rounds());
        assertEquals("c", quick.command());
    }

    @Test
    void eachJmhRunsParameterProductIsExactlyItsGroupOfCases() {
        for (CpuReport.Plan plan : List.of(CpuReport.Plan.parse(), CpuReport.Plan.parse("--quick"))) {
            List<CpuReport.Case> all = new ArrayList<>();
            for (List<CpuReport.Case> group : CpuReport.jmhGroups(plan.cases())) {
                java.util.Set<String> algorithms = new java.util.HashSet<>(), sets = new java.util.HashSet<>();
                for (CpuReport.Case c : group) {
                    algorithms.add(c.algorithm());
                    sets.add(c.set());
                    assertEquals(group.get(0).storage(), c.storage());
                }
                assertEquals(algorithms.size() * sets.size(), group.size(), "the product adds no case: " + group);
                all.addAll(group);
            }
            assertEquals(new java.util.HashSet<>(plan.cases()), new java.util.HashSet<>(all));
            assertEquals(plan.cases().size(), all.size());
        }
        assertTrue(CpuReport.Plan.parse("--quick").cases().contains(new CpuReport.Case("sgd", "fp32", CpuReport.TRANSFORMER)));
        assertTrue(!CpuReport.Plan.parse("--quick").cases().contains(new CpuReport.Case("adam", "fp32", CpuReport.TRANSFORMER)));
    }

    @Test
    void refusedArgumentsSayWhatIsWrong() {
        assertRefused("unknown argument '--fast'", "--fast");
        assertRefused("--rounds must be at least 1, got 0", "--rounds", "0");
        assertRefused("--rounds needs a whole number, got 'two'", "--rounds", "two");
        assertRefused("--out needs a value", "--out");
        assertRefused("--python needs a value", "--python", "--quick");
    }

    private static void assertRefused(String expected, String... args) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CpuReport.Plan.parse(args));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void torchLinesBecomeSamplesAndMalformedOnesAreRefused() {
        CpuReport.Samples samples = new CpuReport.Samples();
        assertEquals(List.of("1.13.1", "2"), List.of(CpuReport.parseTorchLine("META\t1.13.1\t2", samples)));
        assertNull(CpuReport.parseTorchLine("RESULT\tadam\tone:65536\ttrue\t2.5e-05", samples));
        assertNull(CpuReport.parseTorchLine("RESULT\tadam\tone:65536\tfalse\t3e-05", samples));
        assertNull(CpuReport.parseTorchLine("a warning torch printed", samples));
        String key = new CpuReport.Case("adam", "fp32", "one:65536").key();
        assertEquals(2.5e-5, samples.median(CpuReport.TORCH_FOREACH, key));
        assertEquals(3e-5, samples.median(CpuReport.TORCH_FOR_LOOP, key));
        for (String bad : List.of("RESULT\tadam\tone:65536\tyes\t1e-5", "RESULT\tadam\tone:65536\ttrue", "RESULT\tadam\tone:1\ttrue\tfast",
                "RESULT\tadam\tone:1\ttrue\t0", "RESULT\tadam\tone:1\ttrue\tNaN", "META\t1.13")) {
            assertThrows(IllegalArgumentException.class, () -> CpuReport.parseTorchLine(bad, samples), bad);
        }
        assertEquals(2.5e-5, samples.median(CpuReport.TORCH_FOREACH, key), "a refused line adds nothing");
    }

    @Test
    void medianOfOddEvenAndNone() {
        assertEquals(2.0, CpuReport.median(List.of(3.0, 1.0, 2.0)));
        assertEquals(2.5, CpuReport.median(List.of(4.0, 1.0, 3.0, 2.0)));
        assertTrue(Double.isNaN(CpuReport.median(List.of())));
    }

    private static CpuReport.Row row(String algorithm, String storage, String set, double ours, double sameTraffic,
                                     double foreach, double forLoop, double oneOfSameTotal) {
        return row(algorithm, storage, set, ours, sameTraffic, foreach, forLoop, oneOfSameTotal, Double.NaN);
    }

    private static CpuReport.Row row(String algorithm, String storage, String set, double ours, double sameTraffic,
                                     double foreach, double forLoop, double oneOfSameTotal, double float32States) {
        CpuReport.Row draft = new CpuReport.Row(new CpuReport.Case(algorithm, storage, set), ours, sameTraffic, foreach, forLoop,
                Double.NaN, oneOfSameTotal, float32States, List.of());
        return new CpuReport.Row(draft.c(), ours, sameTraffic, foreach, forLoop, Double.NaN, oneOfSameTotal, float32States,
                CpuReport.unmetTargets(draft));
    }

    @Test
    void everyUnmetTargetIsNamed() {
        assertEquals(List.of(), row("adam", "fp32", "one:65536", 1, 0.95, 4, 5, Double.NaN).unmet());
        assertEquals(List.of("< 90% of same-traffic"), row("sgd", "fp32", "one:65536", 1, 0.8, 2, 2, Double.NaN).unmet());
        assertEquals(List.of("< 3x PyTorch"), row("adagrad", "fp32", "one:65536", 1, 1, 2.9, 8, Double.NaN).unmet(),
                "the faster PyTorch mode counts");
        assertEquals(List.of("< 1.0x PyTorch"), row("heavy-ball", "fp32", "one:65536", 1, 1, 0.6, 2, Double.NaN).unmet());
        assertEquals(List.of(), row("sgd", "fp32", "one:65536", 1, 1, 1.0, 1.2, Double.NaN).unmet());
        assertEquals(List.of("581 tensors +20% vs one tensor (> 10%)"),
                row("sgd", "fp32", CpuReport.TRANSFORMER, 1.2, 1.2, 2, 2, 1.0).unmet());
        assertEquals(List.of(), row("sgd", "bf16-master", CpuReport.TRANSFORMER, 1.1, 1.0, Double.NaN, Double.NaN, 1.0).unmet(),
                "PyTorch has no bf16-master step: no PyTorch target; 10% is within");
        assertEquals(List.of("same-traffic not measured", "PyTorch not measured", "one tensor of the same total not measured"),
                row("adam", "fp32", CpuReport.TRANSFORMER, 1, Double.NaN, Double.NaN, Double.NaN, Double.NaN).unmet());
        assertEquals(List.of("fusedopt not measured"), row("adam", "fp32", "one:1", Double.NaN, 1, 1, 1, Double.NaN).unmet());
    }

    /** An 8-bit row: 80% of its own same-traffic kernel and faster than the same case with float32 states; no PyTorch target. */
    @Test
    void eightBitRowsAreHeldAgainstTheirSameTrafficAndTheirFloat32States() {
        String q8 = CpuReport.QUANTIZED_STORAGE;
        assertEquals(List.of(), row("adam", q8, "one:16777216", 1, 0.85, Double.NaN, Double.NaN, Double.NaN, 1.2).unmet());
        assertEquals(List.of("< 80% of same-traffic", "1.25x the time of float32 states"),
                row("adam", q8, "one:16777216", 1, 0.7, Double.NaN, Double.NaN, Double.NaN, 0.8).unmet());
        assertEquals(List.of("float32 states not measured"),
                row("adam", q8, "one:16777216", 1, 0.9, Double.NaN, Double.NaN, Double.NaN, Double.NaN).unmet());
        CpuReport.Plan full = CpuReport.Plan.parse();
        for (String algorithm : CpuReport.QUANTIZED_ALGORITHMS) {
            CpuReport.Case eightBit = new CpuReport.Case(algorithm, q8, "one:" + (1L << 24));
            assertTrue(full.cases().contains(eightBit), algorithm);
            assertTrue(full.cases().contains(new CpuReport.Case(algorithm, "fp32", "one:" + (1L << 24))), "its float32 row, " + algorithm);
        }
        for (CpuReport.Case c : CpuReport.Plan.parse("--quick").cases()) {
            if (c.storage().equals(q8)) assertTrue(CpuReport.Plan.parse("--quick").cases().contains(new CpuReport.Case(c.algorithm(), "fp32", c.set())), c.key());
        }
        assertEquals("16.06", CpuReport.bytesPerParam(new CpuReport.Case("adam", q8, "one:" + (1L << 24))));
        assertEquals("28", CpuReport.bytesPerParam(new CpuReport.Case("adam", "fp32", "one:" + (1L << 24))));
    }

    @Test
    void theTableAndTheJsonHoldEveryRow() throws Exception {
        List<CpuReport.Row> rows = new ArrayList<>();
        rows.add(row("adam", "fp32", "one:65536", 20e-6, 19e-6, 100e-6, 120e-6, Double.NaN));
        rows.add(row("sgd", "bf16-master", CpuReport.TRANSFORMER, 50e-3, 30e-3, Double.NaN, Double.NaN, 40e-3));
        Map<String, String> run = new LinkedHashMap<>();
        run.put("jdk", "17.0.15 \"quoted\"");
        run.put("command", "benchmarks/cpu-report.sh --quick");
        String md = CpuReport.markdown(run, rows, 40.0);
        assertTrue(md.contains("- jdk: 17.0.15 \"quoted\"\n- command: benchmarks/cpu-report.sh --quick\n"), md);
        assertTrue(md.contains("**1 of 2 rows meet every target**"), md);
        assertTrue(md.contains("| Adam | fp32 | one 2^16 | 28 | 20.0 us | 19.0 us | 95% | 91.8 | 229% | 100.0 us | 120.0 us | 5.00x | n/a | met |"),
                md);
        assertTrue(md.contains("| SGD | bf16-master | 581 tensors (168.6M) | 12 | 50.00 ms | 30.00 ms | 60% |"), md);
        assertTrue(md.contains("| n/a | n/a | n/a | n/a | **UNMET**: < 90% of same-traffic; 581 tensors +25% vs one tensor (> 10%) |"), md);
        long headerColumns = md.lines().filter(l -> l.startsWith("| algorithm")).findFirst().orElseThrow().chars().filter(c -> c == '|').count();
        md.lines().filter(l -> l.startsWith("| ")).forEach(l -> assertEquals(headerColumns, l.chars().filter(c -> c == '|').count(), l));

        String json = CpuReport.json(run, rows, 40.0);
        Json.Reader r = new Json.Reader(json, 8, 100, 1000);
        List<Map<String, Object>> parsed = new ArrayList<>();
        r.beginObject();
        assertTrue(r.hasNext());
        assertEquals("run", r.nextName());
        Map<String, Object> runParsed = object(r);
        assertEquals("17.0.15 \"quoted\"", runParsed.get("jdk"));
        assertEquals(40.0, runParsed.get("copy_gb_per_s"));
        assertTrue(r.hasNext());
        assertEquals("rows", r.nextName());
        r.beginArray();
        while (r.hasNext()) parsed.add(object(r));
        assertTrue(!r.hasNext(), "run and rows only");
        r.end();
        assertEquals(2, parsed.size());
        assertEquals(5.0, (double) parsed.get(0).get("speed_up_vs_pytorch"), 1e-9);
        assertEquals(List.of(), parsed.get(0).get("unmet_targets"));
        assertTrue(!parsed.get(1).containsKey("pytorch_foreach_seconds"), "an unmeasured figure is left out");
        assertEquals(581.0, parsed.get(1).get("tensors"));
        assertEquals(12.0 * TOTAL, parsed.get(1).get("bytes_per_step"));
    }

    /** An object of strings, numbers and arrays of strings (the shapes the report writes). */
    private static Map<String, Object> object(Json.Reader r) throws Json.SyntaxException {
        Map<String, Object> m = new LinkedHashMap<>();
        r.beginObject();
        while (r.hasNext()) {
            String name = r.nextName();
            switch (r.peek()) {
                case STRING -> m.put(name, r.nextString());
                case NUMBER -> m.put(name, r.nextDouble());
                case ARRAY -> {
                    List<String> values = new ArrayList<>();
                    r.beginArray();
                    while (r.hasNext()) values.add(r.nextString());
                    m.put(name, values);
                }
                default -> throw new AssertionError("unexpected " + r.peek() + " at " + name);
            }
        }
        return m;
    }
}
