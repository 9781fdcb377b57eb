package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.QuantizedBuffer;
import io.fusedopt.internal.Safetensors;
import io.fusedopt.internal.Safetensors.Dtype;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The 8-bit blockwise states of a checkpoint ({@link StateQuantization#BLOCKWISE_8BIT};
 * docs/checkpoints.md, "8-bit states"): how they are written, and what a load checks about them
 * before it reads any data. A quantized state {@code T} is two tensors, {@code T} (U8, a code per
 * element) and {@code T.absmax} (F32, one per block of 256 elements), with the metadata entry
 * {@code code_map.T} naming the tensor of the code map its codes index ({@code quantization/dynamic}
 * or {@code quantization/udynamic}, F32 [256], written once each); element {@code i} is
 * {@code map[code[i]] * absmax[i / 256]} in float32. The metadata also holds
 * {@code state_quantization} and {@code quantization_block_size}, written only by an optimizer
 * that quantizes states, so that every other checkpoint keeps its bytes.
 */
final class CheckpointQuantization {
    private CheckpointQuantization() {}

    static final String STATE_QUANTIZATION = "state_quantization";
    static final String BLOCK_SIZE = "quantization_block_size";
    /** Metadata key prefix: {@code code_map.T} names the map tensor of the quantized state T. */
    static final String CODE_MAP = "code_map.";
    /** The absmax tensor of the quantized state T is {@code T + ABSMAX}. */
    static final String ABSMAX = ".absmax";
    /**
     * Code map tensors are named {@code quantization/<bitsandbytes' name>}: no parameter's tensor
     * can be named so, since no tensor of a parameter is named "dynamic" or "udynamic".
     */
    private static final String MAP_PREFIX = "quantization/";

    /** The name of the tensor holding {@code map}'s 256 values. */
    static String mapTensor(CodeMap map) {
        return MAP_PREFIX + map.bitsandbytesName();
    }

    /** {@code state_quantization} and {@code quantization_block_size}, when the optimizer quantizes states. */
    static void putMetadata(DeviceOptimizer opt, Map<String, String> metadata) {
        if (opt.stateQuantization() == StateQuantization.NONE) return;
        metadata.put(STATE_QUANTIZATION, opt.stateQuantization().name());
        metadata.put(BLOCK_SIZE, Integer.toString(StateQuantization.BLOCK));
    }

    /** A quantized state in a checkpoint: its codes, its absmax and the map the codes index. */
    record Stored(Safetensors.Entry codes, Safetensors.Entry absmax, CodeMap map) {}

    /** A tensor that belongs to others: the absmax of a quantized state ({@code absmaxOf}), or a code map ({@code map}). */
    record Part(Stored absmaxOf, CodeMap map) {}

    /**
     * A checkpoint's quantized states by the name of their codes, and their parts (absmax and code
     * map tensors) by name: tensors that are read with the state they belong to, never matched
     * with an optimizer's tensor or reported on their own.
     */
    record Layout(Map<String, Stored> quantized, Map<String, Part> parts) {
        static final Layout NONE = new Layout(Map.of(), Map.of());

        /** The part named {@code name}, or null (at once for a checkpoint without 8-bit states). */
        Part part(String name) {
            return parts.isEmpty() ? null : parts.get(name);
        }
    }

    /**
     * Checks the metadata and the structure of every 8-bit state of the checkpoint (whether or not
     * a load takes it): the quantization and its block size, each U8 tensor's code map entry and
     * absmax tensor, each code map tensor's type and length. Reads no data.
     */
    static Layout layout(String file, Safetensors.Header header) throws CheckpointException {
        Safetensors.Metadata m = header.metadata();
        String saved = m.get(STATE_QUANTIZATION);
        StateQuantization quantization = StateQuantization.NONE;
        if (saved != null) {
            try {
                quantization = StateQuantization.valueOf(saved);
            } catch (IllegalArgumentException e) {
                throw new CheckpointException(file + ": " + STATE_QUANTIZATION + " '" + saved + "' is not one of "
                        + java.util.Arrays.toString(StateQuantization.values()));
            }
        }
        if (quantization == StateQuantization.BLOCKWISE_8BIT) {
            String block = m.get(BLOCK_SIZE);
            if (!Integer.toString(StateQuantization.BLOCK).equals(block)) {
                throw new CheckpointException(file + ": " + (block == null ? "the checkpoint has 8-bit states but no " + BLOCK_SIZE
                        : BLOCK_SIZE + " is '" + block + "'") + "; this library's 8-bit states have blocks of " + StateQuantization.BLOCK
                        + " elements");
            }
        }
        Map<String, Safetensors.Entry> byName = null;
        Map<String, Stored> quantized = new LinkedHashMap<>();
        Map<String, Part> parts = new HashMap<>();
        for (Safetensors.Entry codes : header.entries()) {
            if (codes.dtype() != Dtype.U8) continue;
            if (quantization != StateQuantization.BLOCKWISE_8BIT) {
                throw new CheckpointException(file + ": tensor '" + codes.name() + "' is U8 (8-bit codes), but the checkpoint "
                        + (saved == null ? "has no " + STATE_QUANTIZATION : "says " + STATE_QUANTIZATION + " " + saved) + ", not "
                        + StateQuantization.BLOCKWISE_8BIT);
            }
            if (byName == null) {
                byName = new HashMap<>();
                for (Safetensors.Entry e : header.entries()) byName.put(e.name(), e);
            }
            String mapName = m.get(CODE_MAP + codes.name());
            if (mapName == null) {
                throw new CheckpointException(file + ": 8-bit tensor '" + codes.name() + "' has no " + CODE_MAP + codes.name()
                        + " (the code map its codes index)");
            }
            CodeMap map = mapNamed(mapName);
            if (map == null) {
                throw new CheckpointException(file + ": " + CODE_MAP + codes.name() + " is '" + mapName + "', not a code map of this"
                        + " library (" + mapTensor(CodeMap.SIGNED) + ", " + mapTensor(CodeMap.UNSIGNED) + ")");
            }
            Safetensors.Entry table = byName.get(mapName);
            if (table == null) {
                throw new CheckpointException(file + ": " + CODE_MAP + codes.name() + " names tensor '" + mapName + "', which the"
                        + " checkpoint lacks");
            }
            if (table.dtype() != Dtype.F32 || table.length() != BlockwiseQuantization.CODES) {
                throw new CheckpointException(file + ": code map tensor '" + mapName + "' is " + table.dtype() + " [" + table.length()
                        + "]; a code map is F32 [" + BlockwiseQuantization.CODES + "]");
            }
            Safetensors.Entry absmax = byName.get(codes.name() + ABSMAX);
            long blocks = (codes.length() + StateQuantization.BLOCK - 1) / StateQuantization.BLOCK;
            if (absmax == null) {
                throw new CheckpointException(file + ": 8-bit tensor '" + codes.name() + "' lacks its scales, tensor '" + codes.name()
                        + ABSMAX + "'");
            }
            if (absmax.dtype() != Dtype.F32 || absmax.length() != blocks) {
                throw new CheckpointException(file + ": tensor '" + absmax.name() + "' is " + absmax.dtype() + " [" + absmax.length()
                        + "]; the " + codes.length() + " codes of '" + codes.name() + "' need F32 [" + blocks + "], an absmax per block"
                        + " of " + StateQuantization.BLOCK);
            }
            Stored stored = new Stored(codes, absmax, map);
            quantized.put(codes.name(), stored);
            parts.put(absmax.name(), new Part(stored, null));
            parts.put(mapName, new Part(null, map));
        }
        for (int i = 0; i < m.size(); i++) {
            if (!m.keyStartsWith(i, CODE_MAP)) continue;
            String codes = m.keyAt(i).substring(CODE_MAP.length());
            if (!quantized.containsKey(codes)) {
                throw new CheckpointException(file + ": " + m.keyAt(i) + " names no U8 (8-bit codes) tensor of the checkpoint");
            }
        }
        return quantized.isEmpty() ? Layout.NONE : new Layout(quantized, parts);
    }

    /** The map whose tensor is named {@code name}, or null. */
    private static CodeMap mapNamed(String name) {
        for (CodeMap map : CodeMap.values()) if (mapTensor(map).equals(name)) return map;
        return null;
    }

    /**
     * How the checkpoint's {@code entry} (8-bit when {@code stored} is not null) loads into a
     * state or param buffer of the same length: null when as it is (the same format), else the
     * conversion as {@link LoadReport#converted()} states it; a U8 entry into a param or master
     * weights (never 8-bit), or floats of another format, are no conversion (null) and left to
     * the caller's format check.
     */
    static String conversion(Safetensors.Entry entry, Stored stored, AbstractTensorBuffer into, boolean isState) {
        if (into instanceof QuantizedBuffer q) {
            if (stored == null) return "quantized at load: " + entry.dtype() + " into 8-bit codes of " + mapTensor(q.codeMap());
            return stored.map() == q.codeMap() ? null
                    : "requantized: 8-bit codes of " + mapTensor(stored.map()) + " into 8-bit codes of " + mapTensor(q.codeMap());
        }
        if (stored != null && isState) return "dequantized: 8-bit codes of " + mapTensor(stored.map()) + " into " + into.precision();
        return null;
    }

    /** Whether a quantized state's codes and absmax are copied into {@code into} as they are (no conversion). */
    static boolean copiesCodes(Stored stored, AbstractTensorBuffer into) {
        return into instanceof QuantizedBuffer q && q.codeMap() == stored.map();
    }

    /**
     * Refuses an absmax that no quantizer writes: negative or infinite. An absmax is the largest
     * magnitude in its block: finite and at least 0 (-0.0, equal to 0, is taken as a block of
     * zeros), or NaN for a block that held a NaN or an infinity, which reads back as NaN.
     */
    static void checkAbsmax(String file, Safetensors.Entry entry, float[] absmax) throws CheckpointException {
        for (int b = 0; b < absmax.length; b++) {
            float a = absmax[b];
            if (a < 0f || a == Float.POSITIVE_INFINITY) {
                throw new CheckpointException(file + ": tensor '" + entry.name() + "' holds " + a + " for block " + b + "; an absmax is"
                        + " the largest magnitude of its block, finite and >= 0 (or NaN for a block that held NaN or infinity): the"
                        + " checkpoint is damaged");
            }
        }
    }

    /** Refuses a code map tensor whose values are not, bit for bit, those of {@code map}. */
    static void checkMap(String file, Safetensors.Entry entry, CodeMap map, float[] values) throws CheckpointException {
        for (int code = 0; code < BlockwiseQuantization.CODES; code++) {
            float v = values[code];
            if (Float.floatToRawIntBits(v) != Float.floatToRawIntBits(map.value(code))) {
                throw new CheckpointException(file + ": code map tensor '" + entry.name() + "' holds " + v + " at code " + code
                        + ", where bitsandbytes' " + map.bitsandbytesName() + " map (create_dynamic_map) holds " + map.value(code)
                        + ": the map is damaged, or not this library's");
            }
        }
    }
}
