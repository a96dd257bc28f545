package otelhealth;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.configuration.ssl.ClientAuth;
import org.neo4j.configuration.ssl.SslPolicyConfig;
import org.neo4j.configuration.ssl.SslPolicyScope;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilder;
import org.neo4j.harness.Neo4jBuilders;

/**
 * Runs a real Neo4j for the tests: Bolt on 127.0.0.1:PORT, authentication on.
 *
 * <p>Usage: {@code Neo4jLauncher DATA_DIR PORT}. The password of user {@code neo4j} comes from
 * {@code $NEO4J_PASSWORD}; {@code $NEO4J_EXTRA_USERS} (comma separated) are created with the
 * same password, so tests that try wrong passwords lock only their own user. With
 * {@code $NEO4J_TLS=1}, Bolt also speaks TLS on the same port (encryption optional), with the
 * self-signed certificate for {@code localhost} that the harness writes under
 * {@code DATA_DIR/<id>/certificates/public.crt}. Prints {@code NEO4J READY} once Bolt accepts
 * logins; stops on SIGTERM.
 */
public final class Neo4jLauncher {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        int port = Integer.parseInt(args[1]);
        String password = System.getenv("NEO4J_PASSWORD");
        String extra = System.getenv().getOrDefault("NEO4J_EXTRA_USERS", "");
        boolean tls = "1".equals(System.getenv().getOrDefault("NEO4J_TLS", ""));
        Neo4jBuilder builder = Neo4jBuilders.newInProcessBuilder(dir)
                .withDisabledServer()
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .withConfig(GraphDatabaseSettings.auth_enabled, true);
        if (tls) {
            SslPolicyConfig bolt = SslPolicyConfig.forScope(SslPolicyScope.BOLT);
            builder = builder
                    .withConfig(bolt.enabled, true)
                    .withConfig(bolt.client_auth, ClientAuth.NONE)
                    .withConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.OPTIONAL);
        }
        Neo4j neo4j = builder.build();
        GraphDatabaseService system = neo4j.databaseManagementService().database("system");
        system.executeTransactionally(
                "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        for (String user : extra.split(",")) {
            if (!user.isBlank()) {
                system.executeTransactionally(
                        "CREATE USER " + user.strip() + " SET PASSWORD $pw CHANGE NOT REQUIRED",
                        Map.of("pw", password));
            }
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            neo4j.close();
            stopped.countDown();
        }));
        System.out.println("NEO4J READY bolt://127.0.0.1:" + port);
        System.out.flush();
        stopped.await();
    }
}
