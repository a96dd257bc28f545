"""Probe kinds, one module each, all behind :meth:`Probe.run`.

``PROBES`` is the one registry of kinds: the config loader validates ``kind`` against it,
the collector dispatches through it, and ``/health`` and the CLI read each kind's class
attributes (component type, check name, URL schemes). Protocol code stays in this package:
the rest of otel-health sees only :class:`Probe`, its options and the
:class:`~otel_health.result.CheckResult` it returns.
"""

from __future__ import annotations

from ._base import Attempt, Probe, ProbeSettings
from ._inbox import Inbox, Inboxes
from .amqp import AmqpProbe
from .browser import BrowserProbe
from .command import CommandProbe
from .dns import DnsProbe
from .docker import DockerProbe
from .gameserver import GameServerProbe
from .grpc import GrpcProbe
from .heartbeat import HeartbeatProbe
from .http import HttpProbe
from .icmp import IcmpProbe
from .kafka import KafkaProbe
from .mongodb import MongodbProbe
from .mqtt import MqttProbe
from .mysql import MysqlProbe
from .neo4j import Neo4jProbe
from .postgres import PostgresProbe
from .radius import RadiusProbe
from .redis import RedisProbe
from .snmp import SnmpProbe
from .ssh import SshProbe
from .suite import SuiteProbe
from .tcp import TcpProbe
from .udp import UdpProbe
from .websocket import WebSocketProbe

__all__ = ["PROBES", "Attempt", "Inbox", "Inboxes", "Probe", "ProbeSettings"]

PROBES: dict[str, type[Probe]] = {
    HttpProbe.kind: HttpProbe,
    BrowserProbe.kind: BrowserProbe,
    TcpProbe.kind: TcpProbe,
    RedisProbe.kind: RedisProbe,
    PostgresProbe.kind: PostgresProbe,
    Neo4jProbe.kind: Neo4jProbe,
    MysqlProbe.kind: MysqlProbe,
    MongodbProbe.kind: MongodbProbe,
    MqttProbe.kind: MqttProbe,
    AmqpProbe.kind: AmqpProbe,
    KafkaProbe.kind: KafkaProbe,
    CommandProbe.kind: CommandProbe,
    DockerProbe.kind: DockerProbe,
    SnmpProbe.kind: SnmpProbe,
    RadiusProbe.kind: RadiusProbe,
    GrpcProbe.kind: GrpcProbe,
    DnsProbe.kind: DnsProbe,
    SuiteProbe.kind: SuiteProbe,
    HeartbeatProbe.kind: HeartbeatProbe,
    IcmpProbe.kind: IcmpProbe,
    WebSocketProbe.kind: WebSocketProbe,
    SshProbe.kind: SshProbe,
    UdpProbe.kind: UdpProbe,
    GameServerProbe.kind: GameServerProbe,
}
