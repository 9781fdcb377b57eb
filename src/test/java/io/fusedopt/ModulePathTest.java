package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

/**
 * fusedopt on the module path, as a modular application uses it: the library jar is an automatic
 * module named {@code io.fusedopt} by its manifest's {@code Automatic-Module-Name} (not by its file
 * name, which would give "fusedopt"). The test packs target/classes into a jar named as Maven names
 * it, with the manifest entries that pom.xml gives maven-jar-plugin (so removing the entry there
 * fails this test), compiles a consumer module that {@code requires io.fusedopt;} with the system
 * Java compiler, and runs it in a child JVM with {@code --module-path}: it creates CPU optimizers,
 * steps, saves a checkpoint, loads it into a fresh optimizer and compares.
 *
 * <p>JCuda goes on the class path of the child JVM. io.fusedopt declares no {@code requires} (it is
 * automatic), and an automatic module reads the unnamed module, so its CUDA classes link against
 * JCuda there; JCuda's own jars have no module names and its natives are loaded as resources of its
 * jar, which on the class path works exactly as in a class-path application. {@link
 * #jcudaAsAutomaticModulesToo} runs the same consumer with the JCuda jars on the module path.
 */
class ModulePathTest {
    @TempDir
    Path dir;

    static final String MODULE_INFO = """
            module consumer {
                requires io.fusedopt;
            }
            """;

    static final String MAIN = """
            package consumer;

            import io.fusedopt.Adam;
            import io.fusedopt.Backend;
            import io.fusedopt.DeviceOptimizer;
            import io.fusedopt.Parameter;
            import io.fusedopt.TensorBuffer;
            import java.nio.file.Path;
            import java.util.Arrays;

            public final class Main {
                public static void main(String[] args) throws Exception {
                    Path file = Path.of(args[0]);
                    float[] expected;
                    try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU).build()) {
                        Parameter p = register(opt);
                        for (int t = 0; t < 3; t++) {
                            p.grad().copyFrom(new float[] {0.5f, -1f, 2f, t});
                            opt.step();
                        }
                        opt.save(file);
                        expected = p.param().toArray();
                    }
                    try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU).build()) {
                        Parameter p = register(opt);
                        opt.load(file);
                        if (opt.stepCount() != 3 || !Arrays.equals(expected, p.param().toArray())) {
                            throw new AssertionError("the loaded state differs: " + Arrays.toString(p.param().toArray()));
                        }
                    }
                    Module m = DeviceOptimizer.class.getModule();
                    System.out.println("consumer in " + Main.class.getModule().getName() + ", fusedopt in module "
                            + m.getName() + " (automatic: " + m.getDescriptor().isAutomatic() + "): save and load OK");
                }

                static Parameter register(DeviceOptimizer opt) {
                    TensorBuffer w = opt.allocate(4), g = opt.allocate(4);
                    w.copyFrom(new float[] {1, 2, 3, 4});
                    return opt.addGroup().add("layer/weight", w, g);
                }
            }
            """;

    @Test
    void aConsumerModuleRequiresIoFusedoptAndSavesAndLoads() throws Exception {
        Path library = libraryJar();
        Path consumer = compileConsumer(library);
        String out = run(List.of(library, consumer), jcudaJars());
        assertTrue(out.contains("fusedopt in module io.fusedopt (automatic: true): save and load OK"), out);
    }

    @Test
    void jcudaAsAutomaticModulesToo() throws Exception {
        Path library = libraryJar();
        Path consumer = compileConsumer(library);
        List<Path> modulePath = new ArrayList<>(List.of(library, consumer));
        modulePath.addAll(jcudaJars());
        String out = run(modulePath, List.of());
        assertTrue(out.contains("fusedopt in module io.fusedopt (automatic: true): save and load OK"), out);
    }

    /** The manifest entries pom.xml configures for maven-jar-plugin (archive/manifestEntries). */
    static Map<String, String> pomManifestEntries() throws Exception {
        Path pom = Path.of("pom.xml");
        assertTrue(Files.isRegularFile(pom), "run from the project folder: no pom.xml in " + Path.of("").toAbsolutePath());
        Element root = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(pom.toFile()).getDocumentElement();
        Element build = child(root, "build");
        assertNotNull(build, "pom.xml has no <build>");
        Element plugins = child(build, "plugins");
        Map<String, String> entries = new LinkedHashMap<>();
        NodeList list = plugins.getElementsByTagName("plugin");
        for (int i = 0; i < list.getLength(); i++) {
            Element plugin = (Element) list.item(i);
            if (plugin.getParentNode() != plugins) continue;
            Element artifact = child(plugin, "artifactId");
            if (artifact == null || !artifact.getTextContent().trim().equals("maven-jar-plugin")) continue;
            Element manifestEntries = child(child(child(plugin, "configuration"), "archive"), "manifestEntries");
            if (manifestEntries == null) continue;
            for (Node n = manifestEntries.getFirstChild(); n != null; n = n.getNextSibling()) {
                if (n instanceof Element e) entries.put(e.getTagName(), e.getTextContent().trim());
            }
        }
        return entries;
    }

    private static Element child(Element parent, String name) {
        if (parent == null) return null;
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element e && e.getTagName().equals(name)) return e;
        }
        return null;
    }

    @Test
    void thePomNamesTheModule() throws Exception {
        assertEquals("io.fusedopt", pomManifestEntries().get("Automatic-Module-Name"),
                "pom.xml: maven-jar-plugin must set Automatic-Module-Name io.fusedopt in archive/manifestEntries");
    }

    /** target/classes as Maven packages it: fusedopt-VERSION.jar with the pom's manifest entries. */
    Path libraryJar() throws Exception {
        Path classes = location(DeviceOptimizer.class);
        assertTrue(Files.isDirectory(classes), "expected the compiled classes in a folder, found " + classes);
        Manifest manifest = new Manifest();
        Attributes main = manifest.getMainAttributes();
        main.put(Attributes.Name.MANIFEST_VERSION, "1.0");
        pomManifestEntries().forEach((k, v) -> main.putValue(k, v));
        Path jar = dir.resolve("lib").resolve("fusedopt-0.1.0-SNAPSHOT.jar");
        Files.createDirectories(jar.getParent());
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), manifest);
                Stream<Path> files = Files.walk(classes)) {
            for (Path f : (Iterable<Path>) files.sorted()::iterator) {
                if (!Files.isRegularFile(f)) continue;
                String name = classes.relativize(f).toString().replace('\\', '/');
                if (name.equals("META-INF/MANIFEST.MF")) continue;
                out.putNextEntry(new JarEntry(name));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
        return jar;
    }

    /** Compiles the consumer module against the library jar on the module path; its classes folder. */
    Path compileConsumer(Path library) throws IOException {
        Path src = dir.resolve("consumer-src"), out = dir.resolve("consumer-classes");
        Files.createDirectories(src.resolve("consumer"));
        Files.writeString(src.resolve("module-info.java"), MODULE_INFO);
        Files.writeString(src.resolve("consumer/Main.java"), MAIN);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertNotNull(javac, "no system Java compiler (a JRE, not a JDK?)");
        java.io.ByteArrayOutputStream diagnostics = new java.io.ByteArrayOutputStream();
        String[] args = List.of("-d", out.toString(), "--module-path", library.toString(), "-Xlint:-options",
                src.resolve("module-info.java").toString(), src.resolve("consumer/Main.java").toString()).toArray(String[]::new);
        boolean ok = javac.run(null, diagnostics, diagnostics, args) == 0;
        assertTrue(ok, "compiling a module that requires io.fusedopt failed (is the jar's Automatic-Module-Name"
                + " io.fusedopt?):\n" + diagnostics.toString(StandardCharsets.UTF_8));
        return out;
    }

    /** JCuda's jar and its natives jar, from where this JVM loaded them. */
    static List<Path> jcudaJars() throws URISyntaxException {
        List<Path> jars = new ArrayList<>();
        jars.add(location(jcuda.driver.JCudaDriver.class));
        URL natives = ModulePathTest.class.getClassLoader().getResource("lib/libJCudaDriver-12.6.0-linux-x86_64.so");
        if (natives != null && natives.getProtocol().equals("jar")) {
            String path = natives.getPath();
            jars.add(Path.of(new java.net.URI(path.substring(0, path.indexOf("!/")))));
        }
        return jars;
    }

    private static Path location(Class<?> c) throws URISyntaxException {
        return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
    }

    /** Runs consumer/consumer.Main in a child JVM; its output (it must exit 0). */
    String run(List<Path> modulePath, List<Path> classPath) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--module-path", join(modulePath)));
        if (!classPath.isEmpty()) command.addAll(List.of("-cp", join(classPath)));
        command.addAll(List.of("-m", "consumer/consumer.Main", dir.resolve("module.safetensors").toString()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        try (OutputStream stdin = process.getOutputStream()) {
            // nothing to send
        }
        byte[] output = process.getInputStream().readAllBytes();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "the child JVM did not finish");
        String text = new String(output, StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), String.join(" ", command) + "\n" + text);
        return text;
    }

    private static String join(List<Path> paths) {
        return String.join(java.io.File.pathSeparator, paths.stream().map(Path::toString).toList());
    }
}
