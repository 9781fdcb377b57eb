package io.fusedopt.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class WorkerTeamTest {

    @Test
    void everyItemRunsExactlyOnceOnEveryLoop() {
        try (WorkerTeam team = new WorkerTeam(4)) {
            for (int items : new int[] {0, 1, 2, 3, 100, 1001}) {
                AtomicIntegerArray runs = new AtomicIntegerArray(Math.max(items, 1));
                for (int loop = 0; loop < 50; loop++) team.run(items, (worker, item) -> runs.incrementAndGet(item));
                for (int i = 0; i < items; i++) assertEquals(50, runs.get(i), "item " + i + " of " + items);
            }
        }
    }

    @Test
    void workersHaveDistinctIndicesBelowTheTeamSize() {
        try (WorkerTeam team = new WorkerTeam(3)) {
            AtomicIntegerArray seen = new AtomicIntegerArray(3);
            team.run(3000, (worker, item) -> seen.incrementAndGet(worker));
            assertEquals(3000, seen.get(0) + seen.get(1) + seen.get(2));
        }
    }

    @Test
    void theFirstFailureIsRethrownAfterTheLoopAndTheTeamStaysUsable() {
        try (WorkerTeam team = new WorkerTeam(3)) {
            IllegalStateException boom = new IllegalStateException("boom");
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> team.run(100, (w, i) -> {
                if (i == 42) throw boom;
            }));
            assertSame(boom, thrown);
            AtomicIntegerArray runs = new AtomicIntegerArray(10);
            team.run(10, (w, i) -> runs.incrementAndGet(i));
            for (int i = 0; i < 10; i++) assertEquals(1, runs.get(i));
        }
    }

    @Test
    void aClosedTeamRefusesWork() {
        WorkerTeam team = new WorkerTeam(2);
        team.close();
        assertThrows(IllegalStateException.class, () -> team.run(5, (w, i) -> {}));
    }
}
