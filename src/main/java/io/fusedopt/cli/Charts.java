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
     * The series colours, in order: Tableau 10's first ten, chosen to be told apart (the closest
     * two differ by more than 35 in CIELAB). XChart's own cycle gives its second and sixth series,
     * orange and gold, nearly the same colour: the demo's Momentum and Adam.
     */
    static final java.awt.Color[] SERIES_COLORS = {
        new java.awt.Color(31, 119, 180), new java.awt.Color(255, 127, 14), new java.awt.Color(44, 160, 44),
        new java.awt.Color(214, 39, 40), new java.awt.Color(148, 103, 189), new java.awt.Color(140, 86, 75),
        new java.awt.Color(227, 119, 194), new java.awt.Color(127, 127, 127), new java.awt.Color(188, 189, 34),
        new java.awt.Color(23, 190, 207)};

    static XYChart lineChart(String title, String xTitle, String yTitle, List<Line> lines) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(xTitle).yAxisTitle(yTitle).build();
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        chart.getStyler().setSeriesColors(SERIES_COLORS);
        for (Line line : lines) chart.addSeries(line.name(), line.x(), line.y()).setMarker(SeriesMarkers.NONE);
        return chart;
    }

    /** A line drawn in light grey without a legend entry (contours, guides). */
    static void addGuide(XYChart chart, String name, double[] x, double[] y) {
        XYSeries s = chart.addSeries(name, x, y);
        s.setMarker(SeriesMarkers.NONE);
        s.setLineColor(new java.awt.Color(190, 190, 190));
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
