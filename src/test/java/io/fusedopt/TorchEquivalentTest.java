package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.Json;
import io.fusedopt.internal.TorchOptimizer;
import java.io.IOException;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Each algorithm's {@code torch.optim} equivalent ({@link Algorithm#torchEquivalent}), the settings
 * the PyTorch comparisons run, held to what PyTorch itself ran: every float32 case of the reference
 * trajectories ({@link TorchAgreementTest}) records the torch.optim class and keyword arguments
 * beside the same configuration in fusedopt's builder terms, and fusedopt followed that trajectory.
 */
class TorchEquivalentTest {

    @Test
    void everyTorchReferenceCaseHasItsRecordedTorchEquivalent() throws IOException, Json.SyntaxException {
        int checked = 0;
        for (String algorithm : TorchAgreementTest.implemented()) {
            for (Object c : TorchAgreementTest.list(TorchAgreementTest.document(algorithm).get("cases"))) {
                Map<String, Object> spec = TorchAgreementTest.object(c);
                String reference = (String) spec.get("reference");
                if (!spec.get("precision").equals("float32") || !reference.startsWith("torch.optim.")) continue;
                String torchClass = reference.substring("torch.optim.".length(), reference.indexOf(','));
                for (Object g : TorchAgreementTest.list(spec.get("groups"))) {
                    Map<String, Object> group = TorchAgreementTest.object(g);
                    OptimizerConfig config = TorchAgreementTest.config(TorchAgreementTest.object(group.get("fusedopt")));
                    Map<String, Object> expected = new LinkedHashMap<>(TorchAgreementTest.object(group.get("torch")));
                    expected.remove("foreach"); // the implementation, chosen by each comparison, not a hyper-parameter
                    Optional<TorchOptimizer> torch = Algorithms.torchEquivalent(config);
                    assertTrue(torch.isPresent(), spec.get("name") + ": " + config);
                    assertEquals(torchClass, torch.get().className(), spec.get("name") + ": " + config);
                    assertEquals(expected, torch.get().arguments(), spec.get("name") + ": " + config);
                    checked++;
                }
            }
        }
        assertTrue(checked >= 20, checked + " cases");
    }

    /**
     * Every benchmark configuration of an algorithm that torch.optim has (one whose reference file
     * holds a torch.optim trajectory) has a torch equivalent: the PyTorch comparison can run it.
     */
    @Test
    void everyBenchmarkConfigurationTorchHasGetsATorchEquivalent() throws IOException, Json.SyntaxException {
        Set<Class<?>> inTorch = new HashSet<>();
        for (String algorithm : TorchAgreementTest.implemented()) {
            for (Object c : TorchAgreementTest.list(TorchAgreementTest.document(algorithm).get("cases"))) {
                Map<String, Object> spec = TorchAgreementTest.object(c);
                if (!((String) spec.get("reference")).startsWith("torch.optim.")) continue;
                for (Object g : TorchAgreementTest.list(spec.get("groups"))) {
                    inTorch.add(TorchAgreementTest.config(TorchAgreementTest.object(TorchAgreementTest.object(g).get("fusedopt"))).getClass());
                }
            }
        }
        assertFalse(inTorch.isEmpty());
        for (Map.Entry<String, OptimizerConfig> b : Algorithms.benchmarkConfigs().entrySet()) {
            if (inTorch.contains(b.getValue().getClass())) {
                assertTrue(Algorithms.torchEquivalent(b.getValue()).isPresent(), b.getKey() + ": " + b.getValue());
            }
        }
    }

    /** What PyTorch lacks has no equivalent: Adam's step-size form, momentum's velocity form. */
    @Test
    void formsPyTorchLacksHaveNone() {
        assertEquals(Optional.empty(), Algorithms.torchEquivalent(Adam.builder().optForm(Adam.Form.STEP_SIZE).build()));
        assertEquals(Optional.empty(), Algorithms.torchEquivalent(
                Momentum.builder().setMomentum(0.9).optForm(Momentum.Form.VELOCITY).build()));
    }
}
