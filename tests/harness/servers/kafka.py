"""Apache Kafka (Maven Central, fetched by ``components/build.sh kafka``): one KRaft node, broker
and controller, on loopback ports: a plain listener and a SASL/PLAIN one (the login ``checker``),
no topic made by itself (``auto.create.topics.enable=false``); the tests make theirs."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..procs import CACHE, Process, free_port, port_open
from .common import require

__all__ = ["Kafka", "start_kafka"]


@dataclass
class Kafka:
    port: int
    sasl_port: int
    password: str
    process: Process
    java: str
    classpath: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_topic(self, name: str, partitions: int = 1, **configs: str) -> None:
        """A topic made by Kafka's own kafka-topics tool (a JVM of its own: a second or two)."""
        argv = [self.java, "-cp", self.classpath, "org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                self.bootstrap, "--create", "--if-not-exists", "--topic", name, "--partitions", str(partitions),
                "--replication-factor", "1"]
        for key, value in configs.items():
            argv += ["--config", f"{key.replace('_', '.')}={value}"]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self.process.stop(timeout=20)


def start_kafka(workdir: Path, *, password: str) -> Kafka:
    lib = require(CACHE / "kafka" / "lib", "Kafka's jars")
    java = shutil.which("java") or "/usr/bin/java"
    workdir.mkdir(parents=True, exist_ok=True)
    port, sasl_port, controller = free_port(), free_port(), free_port()
    properties = workdir / "server.properties"
    properties.write_text(
        "process.roles=broker,controller\nnode.id=1\n"
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
        f"CONTROLLER://127.0.0.1:{controller}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT\n"
        "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
        "sasl.enabled.mechanisms=PLAIN\n"
        "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
        f'required user_checker="{password}";\n'
        f"log.dirs={workdir / 'data'}\nnum.partitions=1\nauto.create.topics.enable=false\n"
        "offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n"
        "transaction.state.log.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n")
    classpath = f"{lib}/*"
    cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(properties),
                    "--standalone"], check=True, capture_output=True, timeout=120)
    # one compiler tier and the processors of one: a start that does not starve the other test worker
    process = Process("kafka", [java, "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                                "-XX:ActiveProcessorCount=1", "-cp", classpath, "kafka.Kafka",
                                str(properties)], log_path=workdir / "kafka.log")
    process.wait_ready(lambda: port_open(port) and port_open(sasl_port), timeout=120)
    return Kafka(port, sasl_port, password, process, java, classpath)
