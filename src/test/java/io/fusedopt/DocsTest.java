package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The documentation a user reads first, README.md and docs/*.md, kept in step with the project:
 * every relative link leads to a file of the repository and, with a {@code #fragment}, to a heading
 * of that file (as GitHub renders it), and the README's first example compiles against the library
 * as it is now.
 */
class DocsTest {
    private static final Pattern LINK = Pattern.compile("\\[[^\\]]*\\]\\(([^)\\s]+)\\)");
    private static final Pattern INLINE_CODE = Pattern.compile("`[^`]*`");

    @Test
    void everyRelativeLinkLeadsToAFileAndHeading() throws IOException {
        List<String> broken = new ArrayList<>();
        int checked = 0;
        for (Path page : pages()) {
            for (String target : links(page)) {
                if (target.matches("[a-z]+:.*")) continue; // https:, mailto:
                checked++;
                int hash = target.indexOf('#');
                String file = hash < 0 ? target : target.substring(0, hash);
                Path linked = file.isEmpty() ? page : page.getParent().resolve(file).normalize();
                if (!Files.exists(linked)) {
                    broken.add(page + ": " + target + " (no file " + linked + ")");
                } else if (hash >= 0 && !anchors(linked).contains(target.substring(hash + 1))) {
                    broken.add(page + ": " + target + " (no heading with that anchor in " + linked + ")");
                }
            }
        }
        assertTrue(checked > 0, "no relative link found in " + pages());
        assertEquals(List.of(), broken, "broken links");
    }

    @Test
    void theReadmesFirstExampleCompiles(@TempDir Path dir) throws IOException {
        String example = firstJavaBlock(Path.of("README.md"));
        Matcher className = Pattern.compile("public class (\\w+)").matcher(example);
        assertTrue(className.find(), "the README's first java block must be a whole program (public class ...):\n" + example);
        Path source = dir.resolve(className.group(1) + ".java");
        Files.writeString(source, example);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertNotNull(javac, "no system Java compiler (a JRE, not a JDK?)");
        ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
        int status = javac.run(null, diagnostics, diagnostics, "-proc:none", "-Xlint:all", "-Werror",
                "-cp", System.getProperty("java.class.path"), "-d", dir.resolve("classes").toString(), source.toString());
        assertEquals(0, status, "README.md's first example does not compile:\n" + diagnostics.toString(StandardCharsets.UTF_8));
    }

    /** README.md and every page under docs/. */
    private static List<Path> pages() throws IOException {
        Path root = Path.of("").toAbsolutePath();
        List<Path> pages = new ArrayList<>(List.of(root.resolve("README.md")));
        try (Stream<Path> docs = Files.list(root.resolve("docs"))) {
            docs.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
        }
        return pages;
    }

    /** The link targets of a page, outside code blocks and code spans. */
    private static List<String> links(Path page) throws IOException {
        List<String> targets = new ArrayList<>();
        for (String line : prose(page)) {
            Matcher m = LINK.matcher(INLINE_CODE.matcher(line).replaceAll(""));
            while (m.find()) targets.add(m.group(1));
        }
        return targets;
    }

    /** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as '-', repeats numbered. */
    private static Set<String> anchors(Path page) throws IOException {
        Set<String> anchors = new HashSet<>();
        Map<String, Integer> seen = new HashMap<>();
        for (String line : prose(page)) {
            if (!line.matches("#{1,6} .*")) continue;
            String text = line.replaceFirst("#+ ", "").replaceAll("\\[([^\\]]*)\\]\\([^)]*\\)", "$1");
            String slug = text.toLowerCase(Locale.ROOT).replaceAll("[^\\p{L}\\p{N} _-]", "").replace(' ', '-');
            int repeat = seen.merge(slug, 1, Integer::sum) - 1;
            anchors.add(repeat == 0 ? slug : slug + "-" + repeat);
        }
        return anchors;
    }

    /** A page's lines outside fenced code blocks. */
    private static List<String> prose(Path page) throws IOException {
        List<String> lines = new ArrayList<>();
        boolean inCode = false;
        for (String line : Files.readAllLines(page)) {
            if (line.startsWith("```")) inCode = !inCode;
            else if (!inCode) lines.add(line);
        }
        return lines;
    }

    private static String firstJavaBlock(Path page) throws IOException {
        StringBuilder block = null;
        for (String line : Files.readAllLines(page)) {
            if (block == null) {
                if (line.equals("```java")) block = new StringBuilder();
            } else if (line.startsWith("```")) {
                return block.toString();
            } else {
                block.append(line).append('\n');
            }
        }
        throw new AssertionError(page + " has no ```java block");
    }
}
