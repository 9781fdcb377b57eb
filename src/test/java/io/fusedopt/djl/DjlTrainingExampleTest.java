package io.fusedopt.djl;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.example.DjlTrainingExample;
import org.junit.jupiter.api.Test;

/** The README's DJL example runs and learns: its loss over the last steps is well below the first steps'. */
class DjlTrainingExampleTest {
    @Test
    void theExampleTrains() {
        float[] losses = DjlTrainingExample.train(150);
        float first = 0, last = 0;
        for (int i = 0; i < 10; i++) {
            first += losses[i];
            last += losses[losses.length - 1 - i];
        }
        assertTrue(last < 0.5f * first, "loss from " + first / 10 + " to " + last / 10);
    }
}
