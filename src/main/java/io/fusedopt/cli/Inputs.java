package io.fusedopt.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;

/**
 * Checks of option values, made before a command starts its run: a value the run could not use is
 * refused with a usage error (exit status 2) that names the option and what it accepts, before any
 * work is done and before anything is written.
 */
final class Inputs {
    private Inputs() {}

    /** The largest exponent of a {@code 2^k} size: 2^62 is the largest power of two a long holds. */
    static final int MAX_SIZE_EXPONENT = 62;

    /** A usage error for {@code option}: "Invalid value for option '--x': problem" (picocli's wording). */
    static ParameterException refuse(CommandSpec spec, String option, String problem) {
        return new ParameterException(spec.commandLine(), "Invalid value for option '" + option + "': " + problem);
    }

    /** Refuses a count below {@code min}. */
    static void requireAtLeast(CommandSpec spec, String option, long value, long min) {
        if (value < min) throw refuse(spec, option, "must be at least " + min + ", got " + value);
    }

    /** Refuses a value outside {@code [min, max]}; {@code why} explains the upper bound. */
    static void requireRange(CommandSpec spec, String option, long value, long min, long max, String why) {
        if (value < min || value > max) {
            throw refuse(spec, option, "must be from " + min + " to " + max + " (" + why + "), got " + value);
        }
    }

    /** A positive element count written as a number ("1048576") or a power of two ("2^20"). */
    static long parseSize(CommandSpec spec, String option, String text) {
        String t = text.trim();
        String accepted = "expected a positive whole number or 2^k with k from 0 to " + MAX_SIZE_EXPONENT + ", got '" + text + "'";
        try {
            if (t.startsWith("2^")) {
                int k = Integer.parseInt(t.substring(2));
                if (k < 0 || k > MAX_SIZE_EXPONENT) throw refuse(spec, option, accepted);
                return 1L << k;
            }
            long value = Long.parseLong(t);
            if (value < 1) throw refuse(spec, option, accepted);
            return value;
        } catch (NumberFormatException e) {
            throw refuse(spec, option, accepted);
        }
    }

    /**
     * A file the run will write: not a folder, writable if it exists, and in a folder that exists
     * and is writable or that can be created (the nearest existing folder above it is writable).
     * Nothing is created here.
     */
    static void checkOutputFile(CommandSpec spec, String option, Path file) {
        Path absolute = file.toAbsolutePath().normalize();
        if (Files.isDirectory(absolute)) throw refuse(spec, option, "'" + file + "' is a folder; name a file");
        if (Files.exists(absolute) && !Files.isWritable(absolute)) {
            throw refuse(spec, option, "'" + file + "' exists and is not writable");
        }
        Path folder = absolute.getParent();
        if (folder == null) throw refuse(spec, option, "'" + file + "' has no folder to be written into");
        checkFolderCanBeWritten(spec, option, file, folder);
    }

    /**
     * A folder the run writes {@code fileNames} into: an existing writable folder in which none of
     * those names is a folder or a read-only file, or a folder that can be created. Nothing is
     * created here.
     */
    static void checkOutputFolder(CommandSpec spec, String option, Path folder, List<String> fileNames) {
        Path absolute = folder.toAbsolutePath().normalize();
        if (Files.exists(absolute) && !Files.isDirectory(absolute)) {
            throw refuse(spec, option, "'" + folder + "' is a file; name a folder");
        }
        checkFolderCanBeWritten(spec, option, folder, absolute);
        for (String name : fileNames) {
            Path file = absolute.resolve(name);
            if (Files.isDirectory(file)) throw refuse(spec, option, "'" + folder.resolve(name) + "' is a folder; it would be overwritten by a file");
            if (Files.exists(file) && !Files.isWritable(file)) {
                throw refuse(spec, option, "'" + folder.resolve(name) + "' exists and is not writable");
            }
        }
    }

    /**
     * Creates the folder of an output file checked by {@link #checkOutputFile}: called after every
     * other check, just before the run. A folder that passed those checks and still cannot be
     * created (a file system that refuses it, such as {@code /proc}) is a refused value.
     */
    static void createFolderOf(CommandSpec spec, String option, Path file) {
        createFolder(spec, option, file.toAbsolutePath().normalize().getParent());
    }

    /** As {@link #createFolderOf}, for an output folder checked by {@link #checkOutputFolder}. */
    static void createFolder(CommandSpec spec, String option, Path folder) {
        try {
            Files.createDirectories(folder.toAbsolutePath().normalize());
        } catch (IOException e) {
            throw refuse(spec, option, "folder '" + folder + "' cannot be created: " + FusedOptCli.describe(e));
        }
    }

    /** {@code folder} is writable, or the nearest existing folder above it is (so that it can be created). */
    private static void checkFolderCanBeWritten(CommandSpec spec, String option, Path shown, Path folder) {
        Path existing = folder;
        while (existing != null && !Files.exists(existing)) existing = existing.getParent();
        if (existing == null) throw refuse(spec, option, "no folder above '" + shown + "' exists");
        if (!Files.isDirectory(existing)) {
            throw refuse(spec, option, "'" + existing + "' is a file, so '" + shown + "' cannot be written under it");
        }
        if (!Files.isWritable(existing)) {
            throw refuse(spec, option, existing.equals(folder)
                    ? "folder '" + existing + "' is not writable"
                    : "folder '" + existing + "' is not writable, so '" + shown + "' cannot be created under it");
        }
    }
}
