package otelhealth;

import net.kyori.adventure.text.Component;
import net.minestom.server.MinecraftServer;
import net.minestom.server.event.server.ServerListPingEvent;
import net.minestom.server.ping.Status;

/** A Minecraft server that answers a client's status ping: {@code MinecraftLauncher PORT}. */
public final class MinecraftLauncher {
    private MinecraftLauncher() {
    }

    public static void main(String[] args) {
        int port = Integer.parseInt(args[0]);
        MinecraftServer server = MinecraftServer.init();
        MinecraftServer.getGlobalEventHandler().addListener(ServerListPingEvent.class, event ->
                event.setStatus(Status.builder(event.getStatus())
                        .description(Component.text("otel-health test server"))
                        .playerInfo(0, 20)
                        .build()));
        server.start("127.0.0.1", port);
    }
}
