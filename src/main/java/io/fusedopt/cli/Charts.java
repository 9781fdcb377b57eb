package io.fusedopt.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.BitmapEncoder.BitmapFormat;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** XChart line charts of the demo, written as PNG files of a fixed size. */
final class Charts {
    private Charts() {}

    static final int WIDTH = 900;
    static final int HEIGHT = 600;

    /** A named line: x and y values of the same length. */
    record Line(String name, double[] x, double[] y) {
        Line {
            if (x.length != y.length) throw new IllegalArgumentException(name + ": " + x.length + " x values, " + y.length + " y values");
        }
    }

    /**
     * The first series colours: Tableau 10's first six, chosen to be told apart (the closest two
     * differ by 38 in CIELAB; its seventh to tenth come within 28 of them or of the guides' grey).
     * XChart's own cycle gives its second and sixth series, orange and gold, nearly the same colour:
     * the demo's Momentum and Adam. {@link #seriesColors} extends them when a chart has more series.
     */
    private static final java.awt.Color[] TABLEAU = {
        new java.awt.Color(31, 119, 180), new java.awt.Color(255, 127, 14), new java.awt.Color(44, 160, 44),
        new java.awt.Color(214, 39, 40), new java.awt.Color(148, 103, 189), new java.awt.Color(140, 86, 75)};

    /** The background, and the grey of the guides: no series colour comes near them. */
    private static final java.awt.Color WHITE = java.awt.Color.WHITE, GUIDE_GREY = new java.awt.Color(190, 190, 190);

    /**
     * Colours for {@code n} series (at least six, XChart's cycle when series are added later):
     * {@link #TABLEAU}, then (once the algorithms outnumber them) each
     * further colour the one of an sRGB grid farthest in CIELAB from every colour before it, from
     * the white background and from the guides' grey, so that a growing demo keeps its lines apart.
     */
    static java.awt.Color[] seriesColors(int n) {
        java.awt.Color[] colors = java.util.Arrays.copyOf(TABLEAU, Math.max(n, TABLEAU.length));
        for (int i = TABLEAU.length; i < n; i++) {
            double best = -1;
            for (int r = 0; r < 256; r += 17) {
                for (int g = 0; g < 256; g += 17) {
                    for (int b = 0; b < 256; b += 17) {
                        java.awt.Color candidate = new java.awt.Color(r, g, b);
                        double nearest = Math.min(labDistance(candidate, WHITE), labDistance(candidate, GUIDE_GREY));
                        for (int j = 0; j < i; j++) nearest = Math.min(nearest, labDistance(candidate, colors[j]));
                        if (nearest > best) {
                            best = nearest;
                            colors[i] = candidate;
                        }
                    }
                }
            }
        }
        return colors;
    }

    /** The CIE76 colour difference: the distance of the two colours in CIELAB (sRGB, D65). */
    static double labDistance(java.awt.Color a, java.awt.Color b) {
        double[] p = lab(a), q = lab(b);
        return Math.sqrt(square(p[0] - q[0]) + square(p[1] - q[1]) + square(p[2] - q[2]));
    }

    private static double[] lab(java.awt.Color c) {
        double r = linear(c.getRed()), g = linear(c.getGreen()), b = linear(c.getBlue());
        double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
        double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
        double fx = labF(x), fy = labF(y), fz = labF(z);
        return new double[] {116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)};
    }

    private static double linear(int channel) {
        double v = channel / 255.0;
        return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    }

    private static double labF(double t) {
        return t > 216.0 / 24389 ? Math.cbrt(t) : (24389.0 / 27 * t + 16) / 116;
    }

    private static double square(double v) {
        return v * v;
    }

    static XYChart lineChart(String title, String xTitle, String yTitle, List<Line> lines) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(xTitle).yAxisTitle(yTitle).build();
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        chart.getStyler().setSeriesColors(seriesColors(lines.size()));
        for (Line line : lines) chart.addSeries(line.name(), line.x(), line.y()).setMarker(SeriesMarkers.NONE);
        return chart;
    }

    /** A line drawn in light grey without a legend entry (contours, guides). */
    static void addGuide(XYChart chart, String name, double[] x, double[] y) {
        XYSeries s = chart.addSeries(name, x, y);
        s.setMarker(SeriesMarkers.NONE);
        s.setLineColor(GUIDE_GREY);
        s.setShowInLegend(false);
    }

    static void savePng(XYChart chart, Path file) throws IOException {
        BitmapEncoder.saveBitmap(chart, file.toString(), BitmapFormat.PNG);
    }

    static double[] steps(int n) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) x[i] = i + 1;
        return x;
    }
}
