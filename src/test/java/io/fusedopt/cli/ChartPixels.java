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

    private static double square(double v) {
        return v * v;
    }
}
