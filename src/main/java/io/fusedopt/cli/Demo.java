package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Sgd;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The demo: three pictures of what optimizers do, each computed by fusedopt on the chosen backend,
 * and a Markdown report that shows them with their key numbers.
 */
final class Demo {
    private Demo() {}

    public static final String BIAS_CORRECTION_PNG = "adam-bias-correction.png";
    public static final String PATHS_PNG = "optimizer-paths.png";
    public static final String SPIRAL_PNG = "spiral-training-loss.png";
    public static final String MEMORY_SAVERS_PNG = "memory-savers-loss.png";
    /** The memory savers' run is this many times the spiral run by default: small steps need many. */
    static final int MEMORY_SAVERS_STEPS_PER_SPIRAL_STEP = 5;
    public static final String REPORT = "report.md";
    /** Every file the demo writes into its folder. */
    public static final List<String> FILES = List.of(BIAS_CORRECTION_PNG, PATHS_PNG, SPIRAL_PNG, MEMORY_SAVERS_PNG, REPORT);

    /** What the demo computed, for the report and for tests. */
    public record Result(String device, List<Charts.Line> biasCorrection, Map<String, Charts.Line> paths,
                         Map<String, SpiralDemo.Training> spiral, Map<String, SpiralDemo.Training> memorySavers) {}

    /**
     * Runs every part of the demo and writes its charts and report into {@code outDirectory}; the
     * memory savers' run takes {@code memorySteps} steps (a wider network: its steps cost more).
     */
    public static Result run(Backend backend, Path outDirectory, int adamSteps, int pathSteps, int spiralSteps, int memorySteps)
            throws IOException {
        Files.createDirectories(outDirectory);
        String device;
        try (DeviceOptimizer probe = DeviceOptimizer.create(backend, Sgd.builder().build())) {
            device = probe.backend() + ": " + probe.deviceDescription();
            backend = probe.backend(); // AUTO decided (and said why) once; every run below uses its choice
        }
        List<Charts.Line> bias = AdamBiasCorrectionDemo.lines(backend, adamSteps);
        Charts.savePng(biasCorrectionChart(bias), outDirectory.resolve(BIAS_CORRECTION_PNG));
        Map<String, Charts.Line> paths = OptimizerPathsDemo.paths(backend, pathSteps);
        Charts.savePng(pathChart(paths, pathSteps), outDirectory.resolve(PATHS_PNG));
        Map<String, SpiralDemo.Training> spiral = SpiralDemo.train(backend, spiralSteps);
        Charts.savePng(spiralChart(spiral, spiralSteps), outDirectory.resolve(SPIRAL_PNG));

        Map<String, SpiralDemo.Training> memorySavers = MemorySaversDemo.train(backend, memorySteps);
        XYChart memoryChart = lossChart(memorySavers, memorySteps, "Memory savers: the spiral classifier 2-"
                + MemorySaversDemo.NETWORK.hidden + "-3, AdamW lr " + MemorySaversDemo.LEARNING_RATE + ", stored as");
        memoryChart.getStyler().setYAxisLogarithmic(true); // the setups part where the loss is small
        Charts.savePng(memoryChart, outDirectory.resolve(MEMORY_SAVERS_PNG));

        Result result = new Result(device, bias, paths, spiral, memorySavers);
        Files.writeString(outDirectory.resolve(REPORT), report(result, adamSteps, pathSteps, spiralSteps, memorySteps));
        return result;
    }

    /**
     * Adam's normalized step per regime, fresh correction and stored-back bug. Its curves fill the
     * plot from y = 0 to the top right corner, so the legend sits below the plot, covering none.
     */
    static XYChart biasCorrectionChart(List<Charts.Line> bias) {
        XYChart chart = Charts.lineChart("Adam's normalized step m_hat / (sqrt(v_hat) + eps)", "step", "normalized step", bias);
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.OutsideS);
        for (int i = 0; i < bias.size(); i++) { // a regime's two lines share a colour; the bug is dashed
            org.knowm.xchart.XYSeries series = chart.getSeriesMap().get(bias.get(i).name());
            series.setLineColor(Charts.seriesColors(bias.size())[i / 2]);
            if (i % 2 == 1) series.setLineStyle(org.knowm.xchart.style.lines.SeriesLines.DASH_DASH);
        }
        return chart;
    }

    /** Each optimizer's path over the function's contours. */
    static XYChart pathChart(Map<String, Charts.Line> paths, int pathSteps) {
        XYChart chart = Charts.lineChart("Paths on f(x, y) = x^2/20 + y^2 from (-7, 2), " + pathSteps + " steps", "x", "y", List.of());
        for (double level : new double[] {0.1, 0.5, 1.5, 3, 6.45, 10}) {
            Charts.Line c = OptimizerPathsDemo.contour(level);
            Charts.addGuide(chart, c.name(), c.x(), c.y());
        }
        java.awt.Color[] colors = Charts.seriesColors(paths.size());
        int i = 0;
        for (Charts.Line path : paths.values()) {
            // The guides took the first colours of the cycle: each optimizer gets its own from the palette.
            org.knowm.xchart.XYSeries series = chart.addSeries(path.name(), path.x(), path.y());
            series.setMarker(SeriesMarkers.CIRCLE);
            series.setLineColor(colors[i]);
            series.setMarkerColor(colors[i]);
            i++;
        }
        chart.getStyler().setXAxisMin(-10.0).setXAxisMax(10.0).setYAxisMin(-5.0).setYAxisMax(5.0);
        return chart;
    }

    /** Each optimizer's training loss on the spirals. */
    static XYChart spiralChart(Map<String, SpiralDemo.Training> spiral, int spiralSteps) {
        return lossChart(spiral, spiralSteps, "Training loss: 2-32-3 perceptron on three spirals (300 points, full batch)");
    }

    /** Each training's loss per step. */
    static XYChart lossChart(Map<String, SpiralDemo.Training> trainings, int steps, String title) {
        List<Charts.Line> losses = new ArrayList<>();
        trainings.forEach((name, training) -> losses.add(new Charts.Line(name, Charts.steps(steps), training.loss())));
        XYChart chart = Charts.lineChart(title, "step", "cross-entropy", losses);
        chart.getStyler().setXAxisDecimalPattern("#").setXAxisTickMarkSpacingHint(120); // step numbers, not "1,001"
        return chart;
    }

    static String report(Result r, int adamSteps, int pathSteps, int spiralSteps, int memorySteps) {
        StringBuilder b = new StringBuilder("# fusedopt demo\n\nEvery step below was taken by fusedopt on ")
                .append(r.device()).append(".\n\n## Adam's bias correction, fresh or stored back\n\n")
                .append("![normalized step](").append(BIAS_CORRECTION_PNG).append(")\n\n")
                .append("The correction `1/(1-beta^t)` is computed fresh each step and never written back into m and v.\n")
                .append("Writing it back corrects already corrected moments again at every step; `v` compounds fastest,\n")
                .append("so the normalized step collapses toward 0 (here after ").append(adamSteps).append(" steps):\n\n")
                .append("| gradient | normalized step at step 1 | at step ").append(adamSteps).append(" |\n|---|---|---|\n");
        for (Charts.Line line : r.biasCorrection()) {
            b.append(String.format(Locale.ROOT, "| %s | %.4f | %.4g |%n", line.name(), line.y()[0], line.y()[line.y().length - 1]));
        }
        b.append("\n## Paths on a narrow valley\n\n![paths](").append(PATHS_PNG).append(")\n\n")
                .append("f(x, y) = x^2/20 + y^2 from (-7, 2), ").append(pathSteps).append(" steps each:\n\n")
                .append("| optimizer | end point | f at the end | largest x reached |\n|---|---|---|---|\n");
        for (Charts.Line path : r.paths().values()) {
            int last = path.x().length - 1;
            double maxX = Double.NEGATIVE_INFINITY;
            for (double x : path.x()) maxX = Math.max(maxX, x);
            b.append(String.format(Locale.ROOT, "| %s | (%.3f, %.3f) | %.4g | %.3f |%n", path.name(), path.x()[last], path.y()[last],
                    OptimizerPathsDemo.f(path.x()[last], path.y()[last]), maxX));
        }
        b.append("\n## A small classifier\n\n![loss](").append(SPIRAL_PNG).append(")\n\n")
                .append("| optimizer | loss at step 1 | loss at step ").append(spiralSteps).append(" | training accuracy |\n|---|---|---|---|\n");
        r.spiral().forEach((name, t) -> b.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f | %.1f%% |%n", name, t.loss()[0],
                t.loss()[t.loss().length - 1], 100 * t.accuracy())));
        b.append("\n## Memory savers\n\n![loss](").append(MEMORY_SAVERS_PNG).append(")\n\n")
                .append("The classifier 2-").append(MemorySaversDemo.NETWORK.hidden).append("-3 (").append(MemorySaversDemo.NETWORK.params)
                .append(" weights in one tensor), AdamW at lr ").append(MemorySaversDemo.LEARNING_RATE).append(", ").append(memorySteps)
                .append(" steps, float32 gradients, the weights and states stored in each format. Without master weights,\n")
                .append("rounding to nearest loses every update below half a bf16 ulp; stochastic rounding keeps them on average.\n\n")
                .append("| weights | loss at step 1 | loss at step ").append(memorySteps).append(" | training accuracy |\n|---|---|---|---|\n");
        r.memorySavers().forEach((name, t) -> b.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f | %.1f%% |%n", name, t.loss()[0],
                t.loss()[t.loss().length - 1], 100 * t.accuracy())));
        return b.toString();
    }
}
