#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, and builds the real components into
# the cache (~/.cache/otel-health). Each step is skipped when already done.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'deps: %s\n' "$*" >&2; }

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v tinyproxy >/dev/null || [[ -x /usr/bin/tinyproxy ]] || missing+=(tinyproxy)
command -v nsd >/dev/null || [[ -x /usr/sbin/nsd ]] || missing+=(nsd)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
command -v go >/dev/null || missing+=(golang-go)
command -v mvn >/dev/null || missing+=(maven)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
# mail and chat servers for STARTTLS: Exim (SMTP), Dovecot (IMAP, POP3), Prosody (XMPP); instances of their own
command -v exim4 >/dev/null || [[ -x /usr/sbin/exim4 ]] || missing+=(exim4-daemon-light)
command -v dovecot >/dev/null || [[ -x /usr/sbin/dovecot ]] || missing+=(dovecot-imapd dovecot-pop3d)
command -v prosody >/dev/null || missing+=(prosody lua-unbound)  # XMPP
# ICMP: iputils' ping, the reference the icmp kind's loss is held to; iproute2 for the silent host's namespace
command -v ping >/dev/null || missing+=(iputils-ping)
command -v ip >/dev/null || [[ -x /usr/sbin/ip ]] || missing+=(iproute2)
# DNSSEC: ldns-signzone signs the test zones, unbound-host is the validator the verdicts are held to
command -v ldns-signzone >/dev/null || missing+=(ldnsutils)
command -v unbound-host >/dev/null || [[ -x /usr/sbin/unbound-host ]] || missing+=(unbound-host)
# SSH: OpenSSH's server, an instance of its own for the ssh kind (its system service is not started)
command -v sshd >/dev/null || [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
# MariaDB: the mysql kind's server, an instance of its own (the package's service is not started)
command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
# Mosquitto: the mqtt kind's broker, an instance of its own; its mosquitto_pub publishes the retained status
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
# RabbitMQ: the amqp kind's broker, an instance of its own with an Erlang port mapper of its own (its service is not started)
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
# Podman's Docker-compatible service: the docker kind's engine, with runc and an image from Debian's static busybox
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || [[ -x /usr/sbin/runc ]] || missing+=(runc)
command -v busybox >/dev/null || missing+=(busybox-static)
# Net-SNMP: the snmp kind's agent, an instance of its own; snmpget tells when it answers
command -v snmpd >/dev/null || [[ -x /usr/sbin/snmpd ]] || missing+=(snmpd)
command -v snmpget >/dev/null || missing+=(snmp)
# FreeRADIUS: the radius kind's server, an instance of its own from the package's configuration; radclient tells when it answers
command -v freeradius >/dev/null || [[ -x /usr/sbin/freeradius ]] || missing+=(freeradius)
command -v radclient >/dev/null || missing+=(freeradius-utils)
# blackbox_exporter: the reference the parity test holds our verdicts to, and the benchmarks' peer
command -v prometheus-blackbox-exporter >/dev/null || missing+=(prometheus-blackbox-exporter)

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The tests start their own servers on free ports; the packages' system services are not used,
    # nor started (a mail server on port 25 of a CI machine is nobody's wish): a policy that
    # refuses every start while the packages install, unless the machine has one of its own.
    policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# made by otel-health scripts/deps.sh while it installs packages\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        made_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if ((made_policy)); then
        rm -f "$policy"
        trap - EXIT
    fi
fi

[[ "${1:-}" == "--bench" ]] || "$here/components/build.sh" all
