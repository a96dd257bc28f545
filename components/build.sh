#!/usr/bin/env bash
# Builds the real components the tests run (the OpenTelemetry Collector, Jaeger v2, a Neo4j
# launcher, FerretDB, Kafka's jars and a Minecraft server on Minestom)
# into a cache outside the repository. A build is reused while its inputs are unchanged.
#   components/build.sh otelcol|jaeger|neo4j|ferretdb|kafka|minecraft|all
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${OTEL_HEALTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otel-health}"
builder_version="v0.140.0"
mkdir -p "$cache/bin"

log() { printf 'components: %s\n' "$*" >&2; }

inputs_hash() { cat "$@" | sha256sum | cut -c1-16; }

build_otelcol() {
    local manifest="$here/otelcol/builder-config.yaml"
    local stamp; stamp="$(inputs_hash "$manifest" "$0")"
    local out="$cache/bin/otelcol-otel-health"
    if [[ -x "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "otelcol up to date ($out)"; return
    fi
    local builder="$cache/bin/ocb-$builder_version"
    if [[ ! -x "$builder" ]]; then
        log "installing the Collector Builder $builder_version"
        GOBIN="$cache/tmp-gobin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version"
        mv "$cache/tmp-gobin/builder" "$builder"
    fi
    local work="$cache/otelcol-build"
    rm -rf "$work"; mkdir -p "$work"
    sed "s#output_path: ./dist#output_path: $work#" "$manifest" > "$work.yaml"
    log "building the Collector (a few minutes on a cold cache)"
    # The builder's own 'go mod tidy' also resolves the tests of every component, and some
    # of those test-only modules are not served; generate the sources, tidy tolerantly
    # (-e), then compile. The binary needs none of the missing modules.
    "$builder" --config="$work.yaml" --skip-get-modules --skip-compilation >"$work.log" 2>&1 \
        || { tail -n 40 "$work.log" >&2; exit 1; }
    # The load-balancing exporter is served by the Go proxy but absent from the checksum
    # database: without this its download is refused. Every other module is still verified.
    export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter"
    (cd "$work" && go mod tidy -e && go build -trimpath -ldflags="-s -w" -o otelcol-otel-health .) >>"$work.log" 2>&1 \
        || { tail -n 40 "$work.log" >&2; exit 1; }
    mv "$work/otelcol-otel-health" "$out"
    echo "$stamp" > "$out.stamp"
    log "built $out"
}

build_jaeger() {
    local stamp; stamp="$(inputs_hash "$here/jaeger/go.mod" "$here/jaeger/go.sum" "$0")"
    local out="$cache/bin/jaeger"
    if [[ -x "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "jaeger up to date ($out)"; return
    fi
    log "building Jaeger v2 (a few minutes on a cold cache)"
    (cd "$here/jaeger" && go build -trimpath -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
    mv "$out.tmp" "$out"
    echo "$stamp" > "$out.stamp"
    log "built $out"
}

build_ferretdb() {
    local stamp; stamp="$(inputs_hash "$here/ferretdb/go.mod" "$here/ferretdb/go.sum" "$here/ferretdb/main.go" "$0")"
    local out="$cache/bin/ferretdb"
    if [[ -x "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "ferretdb up to date ($out)"; return
    fi
    log "building FerretDB (a minute on a cold cache)"
    (cd "$here/ferretdb" && go build -trimpath -o "$out.tmp" .)
    mv "$out.tmp" "$out"
    echo "$stamp" > "$out.stamp"
    log "built $out"
}

build_kafka() {
    local stamp; stamp="$(inputs_hash "$here/kafka/pom.xml")"
    local out="$cache/kafka"
    if [[ -d "$out/lib" && "$(cat "$out/stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "kafka up to date ($out)"; return
    fi
    log "fetching Kafka from Maven Central"
    rm -rf "$out"; mkdir -p "$out"
    mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$out/lib" >"$out.log" 2>&1 || { tail -n 40 "$out.log" >&2; exit 1; }
    echo "$stamp" > "$out/stamp"
    log "fetched $out"
}

build_minecraft() {
    local stamp; stamp="$(inputs_hash "$here/minecraft/pom.xml" "$here"/minecraft/src/main/java/otelhealth/*.java)"
    local out="$cache/minecraft"
    if [[ -f "$out/classes/otelhealth/MinecraftLauncher.class" && "$(cat "$out/stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "minecraft launcher up to date ($out)"; return
    fi
    # Minestom is built for Java 25: the Temurin JDK beside the system's
    local jdk; jdk="$(ls -d /usr/lib/jvm/*25* 2>/dev/null | head -n 1)"
    [[ -x "$jdk/bin/javac" ]] || { log "no Java 25 JDK in /usr/lib/jvm: the Minecraft server is not built"; return; }
    log "fetching Minestom from Maven Central and compiling the Minecraft launcher"
    rm -rf "$out"; mkdir -p "$out/classes"
    mvn -q -B -f "$here/minecraft/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$out/lib" >"$out.log" 2>&1 || { tail -n 40 "$out.log" >&2; exit 1; }
    "$jdk/bin/javac" --release 25 -cp "$out/lib/*" -d "$out/classes" "$here"/minecraft/src/main/java/otelhealth/*.java
    echo "$jdk/bin/java" > "$out/java"
    echo "$stamp" > "$out/stamp"
    log "built $out"
}

build_neo4j() {
    local stamp; stamp="$(inputs_hash "$here/neo4j/pom.xml" "$here"/neo4j/src/main/java/otelhealth/*.java "$0")"
    local out="$cache/neo4j"
    if [[ -f "$out/classes/otelhealth/Neo4jLauncher.class" && "$(cat "$out/stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "neo4j launcher up to date ($out)"; return
    fi
    log "fetching Neo4j from Maven Central and compiling its launcher"
    rm -rf "$out"; mkdir -p "$out/classes"
    mvn -q -B -f "$here/neo4j/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$out/lib" >"$out.log" 2>&1 || { tail -n 40 "$out.log" >&2; exit 1; }
    javac --release 17 -cp "$out/lib/*" -d "$out/classes" "$here"/neo4j/src/main/java/otelhealth/*.java
    echo "$stamp" > "$out/stamp"
    log "built $out"
}

case "${1:-all}" in
    otelcol) build_otelcol ;;
    jaeger) build_jaeger ;;
    neo4j) build_neo4j ;;
    ferretdb) build_ferretdb ;;
    kafka) build_kafka ;;
    minecraft) build_minecraft ;;
    all) build_otelcol; build_jaeger; build_neo4j; build_ferretdb; build_kafka; build_minecraft ;;
    *) echo "usage: $0 otelcol|jaeger|neo4j|ferretdb|kafka|minecraft|all" >&2; exit 2 ;;
esac
