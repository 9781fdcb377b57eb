package io.fusedopt.cli;

import java.awt.Color;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;

/** What a drawn chart shows, read from its pixels and colours (for the demo's chart tests). */
final class ChartPixels {
    private ChartPixels() {}

    /** How far (in RGB) an anti-aliased pixel of a line may be from the line's colour and still count as it. */
    private static final double LINE_TOLERANCE = 60;

    /**
     * The pixel columns, between the first and the last that hold {@code colour}, that hold none:
     * where something drawn over a continuous curve of that colour hides it.
     */
    static List<Integer> columnsWithoutColourBetweenFirstAndLast(BufferedImage image, Color colour) {
        boolean[] has = new boolean[image.getWidth()];
        for (int x = 0; x < image.getWidth(); x++) {
            for (int y = 0; y < image.getHeight() && !has[x]; y++) has[x] = rgbDistance(new Color(image.getRGB(x, y)), colour) <= LINE_TOLERANCE;
        }
        int first = 0, last = has.length - 1;
        while (first < has.length && !has[first]) first++;
        while (last >= 0 && !has[last]) last--;
        List<Integer> missing = new ArrayList<>();
        for (int x = first; x <= last; x++) if (!has[x]) missing.add(x);
        return missing;
    }

    private static double rgbDistance(Color a, Color b) {
        return Math.sqrt(square(a.getRed() - b.getRed()) + square(a.getGreen() - b.getGreen()) + square(a.getBlue() - b.getBlue()));
    }

    /** The CIE76 colour difference: the distance of the two colours in CIELAB (sRGB, D65). */
    static double labDistance(Color a, Color b) {
        double[] p = lab(a), q = lab(b);
        return Math.sqrt(square(p[0] - q[0]) + square(p[1] - q[1]) + square(p[2] - q[2]));
    }

    private static double[] lab(Color c) {
        double r = linear(c.getRed()), g = linear(c.getGreen()), b = linear(c.getBlue());
        double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
        double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
        double fx = f(x), fy = f(y), fz = f(z);
        return new double[] {116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)};
    }

    private static double linear(int channel) {
        double v = channel / 255.0;
        return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    }

    private static double f(double t) {
        return t > 216.0 / 24389 ? Math.cbrt(t) : (24389.0 / 27 * t + 16) / 116;
    }

    private static double square(double v) {
        return v * v;
    }
}
