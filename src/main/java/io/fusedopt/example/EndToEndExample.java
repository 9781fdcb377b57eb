package io.fusedopt.example;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.ParamGroup;
import io.fusedopt.TensorBuffer;
import java.util.Random;

/**
 * A small end-to-end run on {@link Backend#AUTO}: fits y = X*w_true + b_true by least squares
 * with AdamW (weights decayed, bias not), computing gradients on the host, and prints the loss as
 * it falls. Run with {@code mvn -B -q compile exec:java -Dexec.mainClass=io.fusedopt.example.EndToEndExample}.
 */
public final class EndToEndExample {
    private EndToEndExample() {}

    public static void main(String[] args) {
        int features = 64, samples = 512, steps = 300;
        Random random = new Random(7);
        float[] wTrue = new float[features];
        for (int j = 0; j < features; j++) wTrue[j] = (float) random.nextGaussian();
        float[][] x = new float[samples][features];
        float[] y = new float[samples];
        for (int i = 0; i < samples; i++) {
            for (int j = 0; j < features; j++) x[i][j] = (float) random.nextGaussian();
            y[i] = dot(x[i], wTrue) + 0.5f;
        }

        Adam adamW = Adam.adamW().optLearningRate(0.05).optWeightDecay(1e-4).build();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(adamW).optBackend(Backend.AUTO).build()) {
            System.out.println("backend: " + opt.backend() + " (" + opt.backendReason() + ")");
            TensorBuffer w = opt.allocate(features), dw = opt.allocate(features);
            TensorBuffer b = opt.allocate(1), db = opt.allocate(1);
            ParamGroup weights = opt.addGroup();
            ParamGroup biases = opt.addGroup(adamW.toBuilder().optWeightDecay(0).build());
            weights.add("w", w, dw);
            biases.add("b", b, db);

            float[] wHost = new float[features], gradW = new float[features], bHost = new float[1];
            double firstLoss = Double.NaN, loss = Double.NaN;
            for (int t = 1; t <= steps; t++) {
                w.copyTo(wHost);
                b.copyTo(bHost);
                java.util.Arrays.fill(gradW, 0f);
                double gradB = 0;
                loss = 0;
                for (int i = 0; i < samples; i++) {
                    float r = dot(x[i], wHost) + bHost[0] - y[i];
                    loss += 0.5 * r * r / samples;
                    for (int j = 0; j < features; j++) gradW[j] += r * x[i][j] / samples;
                    gradB += r / samples;
                }
                if (t == 1) firstLoss = loss;
                dw.copyFrom(gradW);
                db.copyFrom(new float[] {(float) gradB});
                if (t % 50 == 0 || t == 1) System.out.printf("step %4d  loss %.6f%n", t, loss);
                if (t == 200) weights.setLearningRate(0.01); // a schedule needs no rebuild
                opt.step();
            }
            System.out.printf("loss %.6f -> %.6f after %d steps; bias %.4f (true 0.5)%n", firstLoss, loss, opt.stepCount(),
                    b.toArray()[0]);
            if (!(loss < firstLoss * 1e-3)) {
                throw new IllegalStateException("the example did not converge: loss " + loss);
            }
        }
    }

    private static float dot(float[] a, float[] b) {
        float s = 0;
        for (int j = 0; j < a.length; j++) s += a[j] * b[j];
        return s;
    }
}
