package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;
import java.util.Map;

/**
 * What a load did, tensor by tensor. Tensors are named as in the checkpoint: {@code name/param},
 * {@code name/master} and {@code name/<state>} ({@code layer1.weight/exp_avg}). After a strict
 * load (the default) only {@link #loaded()} is non-empty, and {@link #converted()} where states
 * were converted; a non-strict load ({@link LoadOptions.Builder#optStrict}) may also leave tensors
 * as they were, listed here.
 *
 * <p>Besides the tensors it lists, every load that returns has restored, from the checkpoint, the
 * step counters (each tensor's own count and frozen flag as {@link DeviceOptimizer#load(java.nio.file.Path,
 * LoadOptions)} says), every saved group's hyper-parameters and learning-rate schedule, and the loss scale
 * (with dynamic loss scaling, the scaler's state). A non-strict load that would match no tensor at all
 * is refused instead ({@link CheckpointException}, nothing changed): it would move only that run-wide
 * state onto tensors of another run, which is almost surely the wrong file or renamed parameters.
 *
 * @param loaded the tensors restored from the checkpoint, in this optimizer's order
 * @param missing this optimizer's tensors that the checkpoint lacks: left as they were
 * @param unexpected the checkpoint's tensors that this optimizer does not have: ignored
 * @param mismatched tensors in both whose length or storage format differ, each with the
 *     difference: left as they were
 * @param paramsIncluded whether the checkpoint holds the params; when it does not
 *     ({@link SaveOptions.Builder#optIncludeParams}) every param was left as it was and no
 *     {@code name/param} is listed as missing
 * @param extraGroups the indices of this optimizer's groups beyond the checkpoint's, after a
 *     non-strict load of a checkpoint with fewer groups (fine-tuning with a new head in its own
 *     group): they kept their configuration and schedule, and their tensors are listed as missing
 * @param converted the loaded states that were stored in another form than this optimizer keeps
 *     them ({@link StateQuantization}), each with what was done: {@code "quantized at load: F32
 *     into 8-bit codes of quantization/dynamic"} (a float state into an 8-bit one: the values
 *     quantized block by block, as a step would), {@code "dequantized: 8-bit codes of
 *     quantization/udynamic into FP32"} (an 8-bit state into a float one: each value
 *     {@code map[code] * absmax}, rounded to the state's format), or {@code "requantized: ..."} (an
 *     8-bit state of another code map). Such a tensor is loaded (it is in {@link #loaded()}), but
 *     continuing is not bit for bit the saved run. Empty when every tensor was loaded as stored.
 */
public record LoadReport(List<String> loaded, List<String> missing, List<String> unexpected, Map<String, String> mismatched,
                         boolean paramsIncluded, List<Integer> extraGroups, Map<String, String> converted) {

    public LoadReport {
        Check.notNull("loaded", loaded);
        Check.notNull("missing", missing);
        Check.notNull("unexpected", unexpected);
        Check.notNull("mismatched", mismatched);
        Check.notNull("extraGroups", extraGroups);
        Check.notNull("converted", converted);
        extraGroups = List.copyOf(extraGroups);
        loaded = List.copyOf(loaded);
        missing = List.copyOf(missing);
        unexpected = List.copyOf(unexpected);
        mismatched = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(mismatched));
        converted = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(converted));
    }

    /** A report of a load that converted no state ({@link #converted()} empty). */
    public LoadReport(List<String> loaded, List<String> missing, List<String> unexpected, Map<String, String> mismatched,
                      boolean paramsIncluded, List<Integer> extraGroups) {
        this(loaded, missing, unexpected, mismatched, paramsIncluded, extraGroups, Map.of());
    }

    /** A report of a load that restored every group of this optimizer (no {@link #extraGroups()}) and converted no state. */
    public LoadReport(List<String> loaded, List<String> missing, List<String> unexpected, Map<String, String> mismatched,
                      boolean paramsIncluded) {
        this(loaded, missing, unexpected, mismatched, paramsIncluded, List.of());
    }

    /**
     * True when every tensor of this optimizer (params aside, when the checkpoint has none) and
     * every group was restored, and none of the checkpoint's tensors was ignored. States
     * {@link #converted()} count as restored.
     */
    public boolean isComplete() {
        return missing.isEmpty() && unexpected.isEmpty() && mismatched.isEmpty() && extraGroups.isEmpty();
    }

    @Override
    public String toString() {
        return "LoadReport[" + loaded.size() + " loaded" + (paramsIncluded ? "" : " (params not in the checkpoint)")
                + ", missing " + missing + ", unexpected " + unexpected + ", mismatched " + mismatched
                + (extraGroups.isEmpty() ? "" : ", groups not in the checkpoint " + extraGroups)
                + (converted.isEmpty() ? "" : ", converted " + converted) + "]";
    }
}
