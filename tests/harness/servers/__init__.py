"""The real servers the tests talk to, each started on free loopback ports: one module a server.

Every ``start_*`` returns a handle with the addresses and a ``stop()``; start-up waits are
bounded and a failure names the server and shows the end of its log.
"""

from __future__ import annotations

from .common import REPO, get_json, http_ok, require
from .dnssec import SIGNED_AT, SignedNsd, start_signed_nsd, valid_around
from .ferretdb import Ferretdb, start_ferretdb
from .freeradius import Freeradius, start_freeradius
from .grpc_health import Grpcd, start_grpcd
from .h3 import H3d, start_h3d
from .http_targets import HttpTargets, start_http_targets
from .jaeger import Jaeger, start_jaeger
from .kafka import Kafka, start_kafka
from .mail import MAIL_PASSWORD, MAIL_USER, Dovecot, Exim, Prosody, start_dovecot, start_exim, start_prosody
from .mariadb import Mariadb, start_mariadb
from .minecraft import MINECRAFT_MOTD, Minecraft, start_minecraft
from .mosquitto import Mosquitto, start_mosquitto
from .neo4j_server import Neo4j, start_neo4j
from .netns import SilentHost, start_silent_host
from .nginx import Nginx, start_nginx
from .nsd import BIG_TXT, ZONE, Nsd, start_nsd
from .ocsp import OcspStack, start_ocsp_stack
from .otelcol import OtelCollector, otelcol_binary, start_otelcol
from .podman import IMAGE as PODMAN_IMAGE
from .podman import Podman, start_podman
from .postgres import Postgres, start_postgres
from .prometheus import Prometheus, start_prometheus
from .rabbitmq import Rabbitmq, start_rabbitmq
from .redis_server import REDIS_USERS, Redis, start_redis
from .snmpd import SYS_DESCR, Snmpd, start_snmpd
from .sshd import PASSPHRASE as SSH_PASSPHRASE
from .sshd import Sshd, ssh_keygen, start_sshd
from .tinyproxy import Tinyproxy, start_tinyproxy
from .websocket import Wsd, start_wsd

__all__ = [
    "BIG_TXT",
    "MAIL_PASSWORD",
    "MAIL_USER",
    "MINECRAFT_MOTD",
    "PODMAN_IMAGE",
    "REDIS_USERS",
    "REPO",
    "SIGNED_AT",
    "SSH_PASSPHRASE",
    "SYS_DESCR",
    "ZONE",
    "Dovecot",
    "Exim",
    "Ferretdb",
    "Freeradius",
    "Grpcd",
    "H3d",
    "HttpTargets",
    "Jaeger",
    "Kafka",
    "Mariadb",
    "Minecraft",
    "Mosquitto",
    "Neo4j",
    "Nginx",
    "Nsd",
    "OcspStack",
    "OtelCollector",
    "Podman",
    "Postgres",
    "Prometheus",
    "Prosody",
    "Rabbitmq",
    "Redis",
    "SignedNsd",
    "SilentHost",
    "Snmpd",
    "Sshd",
    "Tinyproxy",
    "Wsd",
    "get_json",
    "http_ok",
    "otelcol_binary",
    "require",
    "ssh_keygen",
    "start_dovecot",
    "start_exim",
    "start_ferretdb",
    "start_freeradius",
    "start_grpcd",
    "start_h3d",
    "start_http_targets",
    "start_jaeger",
    "start_kafka",
    "start_mariadb",
    "start_minecraft",
    "start_mosquitto",
    "start_neo4j",
    "start_nginx",
    "start_nsd",
    "start_ocsp_stack",
    "start_otelcol",
    "start_podman",
    "start_postgres",
    "start_prometheus",
    "start_prosody",
    "start_rabbitmq",
    "start_redis",
    "start_signed_nsd",
    "start_silent_host",
    "start_snmpd",
    "start_sshd",
    "start_tinyproxy",
    "start_wsd",
    "valid_around",
]
