package io.fusedopt;

import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import java.lang.reflect.RecordComponent;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A configuration as string pairs and back, for checkpoint metadata: the record's components by
 * name ({@code Double.toString} and {@code Integer.toString} for numbers, names for enums), plus {@code "type"}. Decoding goes
 * through the canonical constructor, so a decoded configuration is validated like any other.
 */
final class ConfigCodec {
    private ConfigCodec() {}

    static Map<String, String> encode(OptimizerConfig config) {
        Map<String, String> out = new LinkedHashMap<>();
        out.put("type", Algorithms.of(config).typeName());
        try {
            for (RecordComponent c : config.getClass().getRecordComponents()) {
                out.put(c.getName(), String.valueOf(c.getAccessor().invoke(config)));
            }
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read " + config, e);
        }
        return out;
    }

    /** @throws IllegalArgumentException naming the field that is missing, malformed or out of range */
    static OptimizerConfig decode(Map<String, String> fields) {
        String type = fields.get("type");
        Algorithm<?> algorithm = type == null ? null : Algorithms.byTypeName(type);
        if (algorithm == null) throw new IllegalArgumentException("unknown configuration type '" + type + "'");
        Class<?> cls = algorithm.configType();
        RecordComponent[] components = cls.getRecordComponents();
        Object[] args = new Object[components.length];
        Class<?>[] types = new Class<?>[components.length];
        for (int i = 0; i < components.length; i++) {
            RecordComponent c = components[i];
            types[i] = c.getType();
            String v = fields.get(c.getName());
            if (v == null) throw new IllegalArgumentException(type + " lacks '" + c.getName() + "'");
            try {
                if (c.getType() == double.class) args[i] = Double.parseDouble(v);
                else if (c.getType() == int.class) args[i] = Integer.parseInt(v);
                else if (c.getType() == boolean.class) {
                    if (!v.equals("true") && !v.equals("false")) throw new IllegalArgumentException("not a boolean");
                    args[i] = Boolean.parseBoolean(v);
                } else if (c.getType().isEnum()) args[i] = enumValue(c.getType(), v);
                else throw new IllegalStateException("unsupported component type " + c.getType());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(type + "." + c.getName() + " = '" + v + "' is malformed: " + e.getMessage(), e);
            }
        }
        if (fields.size() != components.length + 1) {
            throw new IllegalArgumentException(type + " has unknown fields: " + fields.keySet());
        }
        try {
            return (OptimizerConfig) cls.getDeclaredConstructor(types).newInstance(args);
        } catch (java.lang.reflect.InvocationTargetException e) {
            if (e.getCause() instanceof IllegalArgumentException iae) throw iae;
            throw new IllegalArgumentException("cannot build " + type + ": " + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Object enumValue(Class<?> type, String name) {
        return Enum.valueOf((Class) type, name);
    }
}
