package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * The CPU reference against values computed by hand (in double, arithmetic in the comments),
 * independently of the code. Tolerance: a few float32 ulps of the result.
 */
class ReferenceHandComputedTest {
    private static final double TOL = 3e-7;

    private static void near(double expected, float actual) {
        assertEquals(expected, actual, TOL * Math.max(1, Math.abs(expected)));
    }

    @Test
    void sgd() {
        // p = 1 - 0.1*0.5 = 0.95
        near(0.95, Trajectory.cpu(Sgd.builder().optLearningRate(0.1).build(), 1f, 0.5f)[0]);
        // L2: g' = 0.5 + 0.1*1 = 0.6; p = 1 - 0.1*0.6 = 0.94
        near(0.94, Trajectory.cpu(Sgd.builder().optLearningRate(0.1).optWeightDecay(0.1).build(), 1f, 0.5f)[0]);
        // maximize: p = 1 + 0.1*0.5 = 1.05
        near(1.05, Trajectory.cpu(Sgd.builder().optLearningRate(0.1).optMaximize(true).build(), 1f, 0.5f)[0]);
    }

    @Test
    void momentumBufferForm() {
        Momentum.Builder b = Momentum.builder().optLearningRate(0.1).setMomentum(0.9);
        // t=1: b = g = 1, p = 1 - 0.1 = 0.9;  t=2: b = 0.9*1 + 1 = 1.9, p = 0.9 - 0.19 = 0.71
        near(0.71, Trajectory.cpu(b.build(), 1f, 1f, 1f)[0]);
        // dampening 0.5 (not on the first step): t=1 p = 0.9; t=2 b = 0.9 + 0.5*1 = 1.4, p = 0.9 - 0.14 = 0.76
        near(0.76, Trajectory.cpu(b.optDampening(0.5).build(), 1f, 1f, 1f)[0]);
        // Nesterov: t=1 b = 1, d = 1 + 0.9*1 = 1.9, p = 0.81; t=2 b = 1.9, d = 1 + 0.9*1.9 = 2.71, p = 0.81 - 0.271 = 0.539
        near(0.539, Trajectory.cpu(b.optDampening(0).optNesterov(true).build(), 1f, 1f, 1f)[0]);
    }

    @Test
    void momentumVelocityForm() {
        Momentum.Builder b = Momentum.builder().optLearningRate(0.1).setMomentum(0.9).optForm(Momentum.Form.VELOCITY);
        // t=1: v = -0.1, p = 0.9;  t=2: v = 0.9*(-0.1) - 0.1 = -0.19, p = 0.71
        near(0.71, Trajectory.cpu(b.build(), 1f, 1f, 1f)[0]);
        // Nesterov: t=1 a = -0.1, v = -0.1, p = (1 - 0.1) + 0.9*(-0.1) = 0.81;
        //           t=2 v = -0.19, p = (0.81 - 0.1) + 0.9*(-0.19) = 0.539
        near(0.539, Trajectory.cpu(b.optNesterov(true).build(), 1f, 1f, 1f)[0]);
    }

    @Test
    void rmsProp() {
        RmsProp.Builder b = RmsProp.builder().optLearningRate(0.01).optAlpha(0.9);
        // s = 0.1*2^2 = 0.4; p = 1 - 0.01 * 2/(sqrt(0.4) + 1e-8) = 0.96837722390
        near(0.9683772238983162, Trajectory.cpu(b.build(), 1f, 2f)[0]);
        // centered: a = 0.1*2 = 0.2; avg = 0.4 - 0.04 = 0.36; p = 1 - 0.01 * 2/(0.6 + 1e-8) = 0.96666666722
        near(0.9666666672222222, Trajectory.cpu(b.optCentered(true).build(), 1f, 2f)[0]);
        // momentum 0.5, g = 2 twice: u1 = 2/sqrt(0.4) = 3.16227761, b = u1, p = 0.96837722;
        // s = 0.9*0.4 + 0.4 = 0.76, u2 = 2/sqrt(0.76) = 2.29415734, b = 0.5*u1 + u2 = 3.87529615, p = 0.92962426
        near(0.929624262723576, Trajectory.cpu(b.optCentered(false).optMomentum(0.5).build(), 1f, 2f, 2f)[0]);
    }

    @Test
    void adamPaperForm() {
        Adam.Builder b = Adam.builder().optLearningRate(0.1);
        // t=1, g=0.5: m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25; p = 1 - 0.1*0.5/(0.5+1e-8) = 0.900000002
        // t=2, g=0.25: m = 0.9*0.05 + 0.1*0.25 = 0.07, v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225;
        //   bc1 = 0.19, bc2 = 0.001999; p = 0.900000002 - 0.1*(0.07/0.19)/(sqrt(0.00031225/0.001999) + 1e-8) = 0.80678204
        near(0.8067820404774623, Trajectory.cpu(b.build(), 1f, 0.5f, 0.25f)[0]);
    }

    @Test
    void adamWeightDecay() {
        // AdamW: p = 1*(1 - 0.1*0.1) = 0.99, then p = 0.99 - 0.1*0.5/(0.5 + 1e-8) = 0.890000002
        near(0.890000002, Trajectory.cpu(Adam.adamW().optLearningRate(0.1).optWeightDecay(0.1).build(), 1f, 0.5f)[0]);
        // L2: g' = 0.5 + 0.1*1 = 0.6; m_hat = 0.6, sqrt(v_hat) = 0.6; p = 1 - 0.1*0.6/(0.6 + 1e-8) = 0.9000000017
        near(0.9000000016666667, Trajectory.cpu(Adam.builder().optLearningRate(0.1).optWeightDecay(0.1).build(), 1f, 0.5f)[0]);
    }

    @Test
    void adamStepSizeForm() {
        // lr_t = 0.1*sqrt(0.001)/0.1 = 0.0316227766; p = 1 - lr_t * 0.05/(sqrt(0.00025) + 1e-8) = 0.90000006325
        near(0.9000000632455132, Trajectory.cpu(Adam.builder().optLearningRate(0.1).optForm(Adam.Form.STEP_SIZE).build(),
                1f, 0.5f)[0]);
    }

    @Test
    void amsgrad() {
        // g = 1 then 0. t=1: m = 0.1, v = vmax = 0.001, p = 1 - 0.1*1/(1 + 1e-8) = 0.900000001
        // t=2: m = 0.09, v = 0.000999 < vmax = 0.001;
        //   p = 0.900000001 - 0.1*(0.09/0.19)/(sqrt(0.001/0.001999) + 1e-8) = 0.83302769
        // (without AMSGrad v = 0.000999 is used: 0.83299418)
        near(0.8330276878258659, Trajectory.cpu(Adam.builder().optLearningRate(0.1).optAmsgrad(true).build(), 1f, 1f, 0f)[0]);
        near(0.8329941765341882, Trajectory.cpu(Adam.builder().optLearningRate(0.1).build(), 1f, 1f, 0f)[0]);
    }

    @Test
    void adagrad() {
        Adagrad.Builder b = Adagrad.builder().optLearningRate(0.1);
        // t=1: h = 4, p = 1 - 0.1*2/2 = 0.9; t=2: h = 8, p = 0.9 - 0.1*2/sqrt(8) = 0.82928932
        near(0.8292893218888453, Trajectory.cpu(b.build(), 1f, 2f, 2f)[0]);
        // lr decay 0.5: t=2 uses clr = 0.1/(1 + 1*0.5): p = 0.9 - (0.1/1.5)*2/sqrt(8) = 0.85285955
        near(0.8528595479275636, Trajectory.cpu(b.optLrDecay(0.5).build(), 1f, 2f, 2f)[0]);
        // initial accumulator 1: h = 1 + 4 = 5, p = 1 - 0.1*2/sqrt(5) = 0.91055728
        near(0.9105572809040084, Trajectory.cpu(b.optLrDecay(0).optInitialAccumulatorValue(1).build(), 1f, 2f)[0]);
    }
}
