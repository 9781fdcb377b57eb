package io.fusedopt.internal;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A {@code torch.optim} optimizer: its class name ("AdamW") and its keyword arguments, each a
 * {@link Double}, a {@link Boolean} or a {@link List} of doubles ({@code betas}), as
 * {@code getattr(torch.optim, className)(params, **arguments)} takes them.
 *
 * @param className the class in {@code torch.optim}
 * @param arguments keyword arguments by PyTorch's names, in PyTorch's signature order
 */
public record TorchOptimizer(String className, Map<String, Object> arguments) {
    public TorchOptimizer {
        Check.notNull("className", className);
        for (Map.Entry<String, Object> a : arguments.entrySet()) {
            Object v = a.getValue();
            boolean doubles = v instanceof List<?> list && list.stream().allMatch(e -> e instanceof Double);
            if (!(v instanceof Double || v instanceof Boolean || doubles)) {
                throw new IllegalArgumentException("argument " + a.getKey() + " of " + className
                        + " must be a double, a boolean or a list of doubles, got " + v);
            }
        }
        arguments = Collections.unmodifiableMap(new LinkedHashMap<>(arguments));
    }

    /** Writes {@code {"class": ..., "arguments": {...}}}. */
    public void write(Json.Writer json) {
        json.beginObject().name("class").value(className).name("arguments").beginObject();
        for (Map.Entry<String, Object> a : arguments.entrySet()) {
            json.name(a.getKey());
            if (a.getValue() instanceof Double d) {
                json.value((double) d);
            } else if (a.getValue() instanceof Boolean b) {
                json.value((boolean) b);
            } else {
                json.beginArray();
                for (Object e : (List<?>) a.getValue()) json.value((double) (Double) e);
                json.endArray();
            }
        }
        json.endObject().endObject();
    }
}
