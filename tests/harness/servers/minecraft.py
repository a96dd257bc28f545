"""A Minecraft (Java edition) server on Minestom, a server library from Maven Central, built by
``components/build.sh minecraft`` (Minestom needs Java 25: the Temurin JDK beside the system's):
it answers a client's status ping with ``otel-health test server``, 0 of 20 players."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..procs import CACHE, Process, free_port, port_open
from .common import require

__all__ = ["MINECRAFT_MOTD", "Minecraft", "start_minecraft"]

MINECRAFT_MOTD = "otel-health test server"


@dataclass
class Minecraft:
    port: int
    process: Process

    def stop(self) -> None:
        self.process.stop()


def start_minecraft(workdir: Path) -> Minecraft:
    home = CACHE / "minecraft"
    require(home / "classes" / "otelhealth" / "MinecraftLauncher.class", "the Minecraft launcher")
    java = (home / "java").read_text().strip()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # one compiler tier and the processors of one: a start that does not starve the other test worker
    process = Process("minecraft", [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:ActiveProcessorCount=1",
                                    "-cp", f"{home / 'classes'}:{home / 'lib'}/*", "otelhealth.MinecraftLauncher",
                                    str(port)],
                      log_path=workdir / "minecraft.log", cwd=workdir)
    process.wait_ready(lambda: port_open(port), timeout=120)
    return Minecraft(port, process)
