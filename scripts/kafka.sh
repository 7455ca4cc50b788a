#!/usr/bin/env bash
# Run a real, single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller) locally, without Docker.
#
# Usage: scripts/kafka.sh start|stop [--clean]|status|fetch|help
#
# The Kafka jars are fetched from Maven Central with `mvn` into
# .cache/kafka/<version>/libs (once), and the broker's data, config and log
# live in .cache/kafka-data/<port>/.  `start` prints
# "bootstrap.servers=127.0.0.1:<port>" on stdout (everything else goes to
# stderr), so `BOOT=$(scripts/kafka.sh start | cut -d= -f2)` works.
#
# Environment:
#   KAFKA_VERSION            org.apache.kafka:kafka_2.13 version (default 4.1.1)
#   KAFKA_PORT               PLAINTEXT listener port (default 9092)
#   KAFKA_CONTROLLER_PORT    KRaft controller port (default KAFKA_PORT+1000)
#   KAFKA_HEAP               heap size ("1g") or full heap flags ("-Xms256m -Xmx1g"); default 1g
#   KAFKA_JVM_OPTS           extra JVM flags for the broker
#   KAFKA_START_TIMEOUT      seconds to wait for the broker to come up (default 60)
#   KAFKA_STOP_TIMEOUT       seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_CLEAN=1            with `stop`: also delete the data dir (same as --clean)
#   KAFKA_MVN_ARGS           extra arguments for mvn (e.g. -Dmaven.repo.local=...)
#   JAVA_HOME                Java 17+ to use (default: `java` on PATH)
#
# Optional secured listener (off unless KAFKA_SASL_SSL_PORT is set; the PLAINTEXT listener
# stays for admin/bootstrap):
#   KAFKA_SASL_SSL_PORT      adds SASL_SSL://127.0.0.1:<port> (mechanisms PLAIN and SCRAM-SHA-512)
#   KAFKA_SSL_DIR            where the CA and the server keystore live (default <data dir>/ssl);
#                            generated with openssl on first start if missing: ca.crt is the
#                            certificate clients trust (ssl.ca.location), server.p12 the PKCS12
#                            keystore (random password in keystore.password)
#   KAFKA_SASL_USERS         users as "name:password[,name:password...]"
#   KAFKA_SASL_USERS_FILE    or a file with one "name:password" per line
#                            PLAIN users are re-read on every start; SCRAM-SHA-512 credentials
#                            are written when the storage is formatted (first start), so
#                            changing them needs `stop --clean`.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
CACHE_DIR="$REPO_ROOT/.cache"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_HOST=127.0.0.1
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP="${KAFKA_HEAP:-1g}"
MIN_JAVA=17

DIST_DIR="$CACHE_DIR/kafka/$KAFKA_VERSION"
LIBS_DIR="$DIST_DIR/libs"
FETCH_MARKER="$DIST_DIR/.fetch-complete"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

is_port_number() { [[ "$1" =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 65535 )); }

resolve_ports() {
    is_port_number "$KAFKA_PORT" || die "KAFKA_PORT must be a TCP port number, got '$KAFKA_PORT'"
    if [[ -z "${KAFKA_CONTROLLER_PORT:-}" ]]; then
        if (( KAFKA_PORT + 1000 <= 65535 )); then
            KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1000))
        else
            KAFKA_CONTROLLER_PORT=$((KAFKA_PORT - 1000))
        fi
    fi
    is_port_number "$KAFKA_CONTROLLER_PORT" || die "KAFKA_CONTROLLER_PORT must be a TCP port number, got '$KAFKA_CONTROLLER_PORT'"
    [[ "$KAFKA_CONTROLLER_PORT" != "$KAFKA_PORT" ]] || die "KAFKA_CONTROLLER_PORT must differ from KAFKA_PORT"
    DATA_DIR="$CACHE_DIR/kafka-data/$KAFKA_PORT"
    LOG_DIRS="$DATA_DIR/log"
    PID_FILE="$DATA_DIR/kafka.pid"
    SERVER_LOG="$DATA_DIR/server.log"
    PROPS_FILE="$DATA_DIR/server.properties"
    LOG4J_FILE="$DATA_DIR/log4j2.properties"
    CLUSTER_ID_FILE="$DATA_DIR/cluster.id"
    SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
    if [[ -n "$SASL_SSL_PORT" ]]; then
        is_port_number "$SASL_SSL_PORT" || die "KAFKA_SASL_SSL_PORT must be a TCP port number, got '$SASL_SSL_PORT'"
        [[ "$SASL_SSL_PORT" != "$KAFKA_PORT" && "$SASL_SSL_PORT" != "$KAFKA_CONTROLLER_PORT" ]] \
            || die "KAFKA_SASL_SSL_PORT must differ from KAFKA_PORT and KAFKA_CONTROLLER_PORT"
    fi
    SSL_DIR="${KAFKA_SSL_DIR:-$DATA_DIR/ssl}"
}

# ----------------------------------------------------------- SASL_SSL ----

# Reads KAFKA_SASL_USERS / KAFKA_SASL_USERS_FILE into SASL_USERS (names) and
# SASL_PASSWORDS. Passwords are never logged.
read_sasl_users() {
    SASL_USERS=(); SASL_PASSWORDS=()
    local entries=() more=() entry name password
    if [[ -n "${KAFKA_SASL_USERS_FILE:-}" ]]; then
        [[ -r "$KAFKA_SASL_USERS_FILE" ]] || die "KAFKA_SASL_USERS_FILE '$KAFKA_SASL_USERS_FILE' is not readable"
        while IFS= read -r entry || [[ -n "$entry" ]]; do
            [[ -z "${entry// /}" || "$entry" == \#* ]] || entries+=("$entry")
        done <"$KAFKA_SASL_USERS_FILE"
    fi
    if [[ -n "${KAFKA_SASL_USERS:-}" ]]; then
        IFS=',' read -r -a more <<<"$KAFKA_SASL_USERS"
        entries+=("${more[@]}")
    fi
    (( ${#entries[@]} > 0 )) || die "KAFKA_SASL_SSL_PORT is set but there are no users: set KAFKA_SASL_USERS=name:password[,...] or KAFKA_SASL_USERS_FILE"
    for entry in "${entries[@]}"; do
        [[ "$entry" == *:* ]] || die "SASL user entries are name:password (got an entry without ':')"
        name="${entry%%:*}"; password="${entry#*:}"
        [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "SASL user name '$name': use letters, digits, '_', '.', '-'"
        [[ -n "$password" ]] || die "SASL user '$name' has an empty password"
        # These would break the JAAS line, the properties file or --add-scram's syntax.
        if [[ "$password" =~ [][\"\\,=[:space:]] ]]; then
            die "the password of SASL user '$name' contains a character this script cannot pass safely (quote, backslash, ',', '=', '[', ']' or whitespace)"
        fi
        SASL_USERS+=("$name"); SASL_PASSWORDS+=("$password")
    done
}

# A CA and a server certificate for 127.0.0.1/localhost signed by it, in a PKCS12 keystore.
ensure_ssl_material() {
    if [[ -s "$SSL_DIR/ca.crt" && -s "$SSL_DIR/server.p12" && -s "$SSL_DIR/keystore.password" ]]; then
        return 0
    fi
    command -v openssl >/dev/null || die "openssl is needed to generate the SASL_SSL certificates (apt-get install openssl)"
    mkdir -p "$SSL_DIR"
    chmod 700 "$SSL_DIR"
    log "generating a CA and a server keystore in $SSL_DIR"
    local out
    if ! out="$( (
            set -e
            umask 077
            cd "$SSL_DIR"
            openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=driftline-test-ca" \
                -keyout ca.key -out ca.crt
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
                -extfile server.ext -out server.crt
            openssl rand -hex 24 | tr -d '\n' >keystore.password
            openssl pkcs12 -export -in server.crt -inkey server.key -certfile ca.crt -name kafka \
                -passout file:keystore.password -out server.p12
            rm -f server.csr server.ext ca.srl
            chmod 644 ca.crt
        ) 2>&1)"; then
        printf '%s\n' "$out" | tail -n 20 >&2
        die "generating the SASL_SSL certificates in $SSL_DIR failed (see above)"
    fi
}

# ---------------------------------------------------------------- tools ----

find_java() {
    if [[ -n "${JAVA_HOME:-}" ]]; then
        JAVA="$JAVA_HOME/bin/java"
        [[ -x "$JAVA" ]] || die "JAVA_HOME is set to '$JAVA_HOME' but $JAVA is not an executable; fix JAVA_HOME or unset it to use 'java' on PATH"
    else
        JAVA="$(command -v java || true)"
        [[ -n "$JAVA" ]] || die "no Java found: install a JDK/JRE $MIN_JAVA+ (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    fi
    local spec
    spec="$("$JAVA" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^[[:space:]]*java\.specification\.version = //p' | head -n1)"
    spec="${spec#1.}"          # 1.8 -> 8
    spec="${spec%%.*}"
    [[ "$spec" =~ ^[0-9]+$ ]] || die "could not determine the version of $JAVA"
    if (( spec < MIN_JAVA )); then
        die "Kafka $KAFKA_VERSION needs Java $MIN_JAVA or newer, but $JAVA is Java $spec; set JAVA_HOME to a Java $MIN_JAVA+ installation"
    fi
}

find_mvn() {
    MVN="$(command -v mvn || true)"
    [[ -n "$MVN" ]] || die "Maven ('mvn') is not on PATH; it is needed once to download the Kafka jars (e.g. apt-get install maven)"
}

# ---------------------------------------------------------------- fetch ----

fetch_complete() {
    [[ -f "$FETCH_MARKER" && -f "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

write_pom() { # $1 = pom path, $2 = extra <dependency> xml
    cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.sh: only used to download the Kafka broker jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.driftline</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
$2
  </dependencies>
</project>
EOF
}

run_mvn_copy() { # $1 = pom, $2 = output dir
    local out
    # shellcheck disable=SC2086
    if ! out="$("$MVN" -B -q -Dstyle.color=never -f "$1" ${KAFKA_MVN_ARGS:-} \
            dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$2" 2>&1)"; then
        printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -v '^[[:space:]]*$' | tail -n 30 >&2
        return 1
    fi
}

do_fetch() {
    if fetch_complete; then
        return 0
    fi
    find_mvn
    mkdir -p "$DIST_DIR"
    # Serialize concurrent fetches of the same version.
    exec 8>"$DIST_DIR/.fetch.lock"
    flock 8 2>/dev/null || true
    if fetch_complete; then
        exec 8>&-
        return 0
    fi
    local started=$SECONDS tmp="$DIST_DIR/libs.tmp"
    log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies with Maven ..."
    rm -rf "$tmp"
    mkdir -p "$tmp"

    # Step 1: the broker itself.  kafka_2.13 pulls in kafka-server, -metadata,
    # -raft, -storage, the coordinators, scala-library, log4j-core/-api and
    # slf4j-api, but no SLF4J -> log4j2 binding (the binary distribution adds
    # that), so Kafka's SLF4J logging would be silently dropped without step 2.
    write_pom "$DIST_DIR/pom.xml" ""
    if ! run_mvn_copy "$DIST_DIR/pom.xml" "$tmp"; then
        rm -rf "$tmp"
        [[ -d "$LIBS_DIR" ]] || rm -rf "$DIST_DIR"
        die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is KAFKA_VERSION a released Kafka 4.x version, e.g. 4.1.1? Maven Central must be reachable)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] \
        || die "Maven succeeded but kafka_2.13-$KAFKA_VERSION.jar is missing from $tmp"

    # Step 2: the SLF4J binding matching the log4j and slf4j versions that
    # this Kafka version depends on.
    local log4j_jar log4j_ver slf4j_jar binding
    log4j_jar="$(cd "$tmp" && ls log4j-core-*.jar 2>/dev/null | head -n1 || true)"
    slf4j_jar="$(cd "$tmp" && ls slf4j-api-*.jar 2>/dev/null | head -n1 || true)"
    [[ -n "$log4j_jar" ]] || die "no log4j-core jar among the dependencies of kafka_2.13:$KAFKA_VERSION; this script expects Kafka 4.x"
    log4j_ver="${log4j_jar#log4j-core-}"; log4j_ver="${log4j_ver%.jar}"
    if [[ "$slf4j_jar" == slf4j-api-1.* ]]; then
        binding=log4j-slf4j-impl      # SLF4J 1.x binding
    else
        binding=log4j-slf4j2-impl     # SLF4J 2.x provider
    fi
    write_pom "$DIST_DIR/pom.xml" "    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>$binding</artifactId>
      <version>$log4j_ver</version>
    </dependency>"
    if ! run_mvn_copy "$DIST_DIR/pom.xml" "$tmp"; then
        rm -rf "$tmp"
        die "Maven could not resolve org.apache.logging.log4j:$binding:$log4j_ver"
    fi

    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    {
        echo "kafka_version=$KAFKA_VERSION"
        echo "slf4j_binding=$binding:$log4j_ver"
        echo "jars=$(ls "$LIBS_DIR" | wc -l)"
        echo "fetched_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$FETCH_MARKER"
    exec 8>&-
    log "fetched $(ls "$LIBS_DIR" | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)) into $LIBS_DIR in $((SECONDS - started))s"
}

# -------------------------------------------------------------- process ----

port_open() { # $1 = port
    (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# Is $1 a live process that is our broker for this data dir?
is_our_broker() {
    local pid="$1" cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$PROPS_FILE"* ]]
}

# Prints the pid of the broker for this port, if running.
broker_pid() {
    local pid=""
    [[ -f "$PID_FILE" ]] && pid="$(tr -dc '0-9' <"$PID_FILE")"
    if is_our_broker "$pid"; then
        echo "$pid"
        return 0
    fi
    # Pid file lost or stale: look for a broker started with our config file.
    local d
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        if [[ "$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null || true)" == *kafka.Kafka*"$PROPS_FILE"* ]] \
                && is_our_broker "$pid"; then
            echo "$pid" >"$PID_FILE"
            echo "$pid"
            return 0
        fi
    done
    return 1
}

heap_opts() {
    if [[ "$KAFKA_HEAP" == -* ]]; then
        echo "$KAFKA_HEAP"
    else
        echo "-Xms256m -Xmx$KAFKA_HEAP"
    fi
}

write_configs() {
    local listeners="PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
    local advertised="PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if [[ -n "$SASL_SSL_PORT" ]]; then
        listeners+=",SASL_SSL://$KAFKA_HOST:$SASL_SSL_PORT"
        advertised+=",SASL_SSL://$KAFKA_HOST:$SASL_SSL_PORT"
        protocols+=",SASL_SSL:SASL_SSL"
        # The file holds the keystore and PLAIN passwords.
        rm -f "$PROPS_FILE"
        (umask 077; : >"$PROPS_FILE")
    fi
    cat >"$PROPS_FILE" <<EOF
# Generated by scripts/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$LOG_DIRS
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=104857600
EOF
    if [[ -n "$SASL_SSL_PORT" ]]; then
        local jaas="org.apache.kafka.common.security.plain.PlainLoginModule required" i
        for i in "${!SASL_USERS[@]}"; do
            jaas+=" user_${SASL_USERS[$i]}=\"${SASL_PASSWORDS[$i]}\""
        done
        cat >>"$PROPS_FILE" <<EOF
# SASL_SSL listener (KAFKA_SASL_SSL_PORT)
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=$jaas;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$SSL_DIR/server.p12
ssl.keystore.password=$(cat "$SSL_DIR/keystore.password")
ssl.client.auth=none
EOF
    fi
    cat >"$LOG4J_FILE" <<'EOF'
# Generated by scripts/kafka.sh. Everything goes to stdout, which the script
# redirects to server.log.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# The full config dumps (broker and every internal client) are very long.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.channel.name = kafka.network.RequestChannel$
logger.channel.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
}

format_storage() {
    if [[ -f "$LOG_DIRS/meta.properties" ]]; then
        return 0
    fi
    local cluster_id
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cluster_id="$(tr -d '[:space:]' <"$CLUSTER_ID_FILE")"
    else
        cluster_id="$("$JAVA" -cp "$LIBS_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 | tr -d '[:space:]')"
        [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid produced no cluster id"
        echo "$cluster_id" >"$CLUSTER_ID_FILE"
    fi
    log "formatting KRaft storage in $LOG_DIRS (cluster id $cluster_id)"
    local out scram=() i
    if [[ -n "$SASL_SSL_PORT" ]]; then
        for i in "${!SASL_USERS[@]}"; do
            scram+=(--add-scram "SCRAM-SHA-512=[name=${SASL_USERS[$i]},password=${SASL_PASSWORDS[$i]}]")
        done
        log "adding SCRAM-SHA-512 credentials for: ${SASL_USERS[*]}"
    fi
    if ! out="$("$JAVA" -Xmx256m -Dlog4j2.configurationFile="$LOG4J_FILE" \
            -Dlog4j2.level=WARN -cp "$LIBS_DIR/*" \
            kafka.tools.StorageTool format --ignore-formatted \
            -t "$cluster_id" -c "$PROPS_FILE" ${scram[@]+"${scram[@]}"} 2>&1)"; then
        printf '%s\n' "$out" | grep -v -E '^\[.*\] (INFO|DEBUG)' | tail -n 30 >&2
        die "formatting the storage directory failed (see above)"
    fi
}

do_start() {
    resolve_ports
    find_java
    do_fetch
    mkdir -p "$DATA_DIR"

    # Serialize concurrent `start`s for the same port.
    exec 9>"$DATA_DIR/.start.lock"
    flock 9 2>/dev/null || true

    local pid
    if pid="$(broker_pid)"; then
        if port_open "$KAFKA_PORT"; then
            log "Kafka is already running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT"
            echo "bootstrap.servers=$KAFKA_HOST:$KAFKA_PORT"
            return 0
        fi
        log "Kafka process $pid exists but port $KAFKA_PORT does not answer yet; waiting for it"
    else
        rm -f "$PID_FILE"
        if port_open "$KAFKA_PORT"; then
            die "port $KAFKA_PORT is already in use by another process (not a broker started by this script); choose another KAFKA_PORT"
        fi
        if port_open "$KAFKA_CONTROLLER_PORT"; then
            die "controller port $KAFKA_CONTROLLER_PORT is already in use; set KAFKA_CONTROLLER_PORT to a free port"
        fi
        if [[ -n "$SASL_SSL_PORT" ]]; then
            if port_open "$SASL_SSL_PORT"; then
                die "SASL_SSL port $SASL_SSL_PORT is already in use; choose another KAFKA_SASL_SSL_PORT"
            fi
            read_sasl_users
            ensure_ssl_material
        fi

        write_configs
        format_storage

        # Keep the previous run's log for post-mortems.
        [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$SERVER_LOG.1"
        local -a cmd
        # shellcheck disable=SC2206
        cmd=("$JAVA" $(heap_opts)
             -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
             -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExitOnOutOfMemoryError
             -Djava.awt.headless=true
             "-Dlog4j2.configurationFile=$LOG4J_FILE"
             "-Dkafka.logs.dir=$DATA_DIR"
             ${KAFKA_JVM_OPTS:-}
             -cp "$LIBS_DIR/*"
             kafka.Kafka "$PROPS_FILE")
        echo "${cmd[*]}" >"$DATA_DIR/java-command.txt"
        echo "$KAFKA_VERSION" >"$DATA_DIR/kafka.version"
        log "starting Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT), log: $SERVER_LOG"
        rm -f "$PID_FILE"
        # setsid: own session, so the broker outlives the calling shell and
        # is not hit by Ctrl-C there.  The inner shell records its own pid and
        # execs java, so the pid file holds java's pid.
        nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" "${cmd[@]}" \
            </dev/null >>"$SERVER_LOG" 2>&1 8>&- 9>&- &
        disown 2>/dev/null || true
    fi

    local started=$SECONDS deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while :; do
        pid=""
        [[ -f "$PID_FILE" ]] && pid="$(tr -dc '0-9' <"$PID_FILE")"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$SERVER_LOG" >&2 || true
            die "Kafka exited during startup (see $SERVER_LOG; if the data dir is corrupt or from another Kafka version: $0 stop --clean)"
        fi
        if [[ -n "$pid" ]] && port_open "$KAFKA_PORT" \
                && { [[ -z "$SASL_SSL_PORT" ]] || port_open "$SASL_SSL_PORT"; } \
                && grep -q -E 'Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)' "$SERVER_LOG" 2>/dev/null; then
            break
        fi
        if (( SECONDS >= deadline )); then
            tail -n 40 "$SERVER_LOG" >&2 || true
            die "Kafka did not become ready within ${KAFKA_START_TIMEOUT}s (pid ${pid:-?}, log $SERVER_LOG); it is left running: '$0 stop' to kill it"
        fi
        sleep 0.5
    done
    exec 9>&-
    log "Kafka is up (pid $pid) after $((SECONDS - started))s"
    if [[ -n "$SASL_SSL_PORT" ]]; then
        log "SASL_SSL listener on $KAFKA_HOST:$SASL_SSL_PORT (PLAIN, SCRAM-SHA-512); clients trust $SSL_DIR/ca.crt"
    fi
    echo "bootstrap.servers=$KAFKA_HOST:$KAFKA_PORT"
}

do_stop() {
    local clean="${KAFKA_CLEAN:-0}" arg
    for arg in "$@"; do
        case "$arg" in
            --clean) clean=1 ;;
            *) die "unknown option for stop: $arg (only --clean)" ;;
        esac
    done
    [[ "$clean" == 0 || "$clean" == "" || "$clean" == false ]] && clean=0 || clean=1
    resolve_ports

    local pid
    if pid="$(broker_pid)"; then
        log "stopping Kafka (pid $pid) on port $KAFKA_PORT"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
        while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "Kafka did not exit within ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        fi
        log "stopped"
    else
        log "Kafka is not running on port $KAFKA_PORT"
    fi
    rm -f "$PID_FILE"
    if (( clean )); then
        log "deleting $DATA_DIR"
        rm -rf "$DATA_DIR"
    fi
}

do_status() {
    resolve_ports
    local pid
    if pid="$(broker_pid)"; then
        if port_open "$KAFKA_PORT"; then
            echo "running (pid $pid, Kafka $(cat "$DATA_DIR/kafka.version" 2>/dev/null || echo '?')) bootstrap.servers=$KAFKA_HOST:$KAFKA_PORT data=$DATA_DIR"
            return 0
        fi
        echo "not ready (pid $pid is alive but port $KAFKA_PORT does not answer; see $SERVER_LOG)"
        return 1
    fi
    echo "not running (port $KAFKA_PORT)"
    return 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start)  do_start "$@" ;;
    stop)   do_stop "$@" ;;
    status) do_status "$@" ;;
    fetch)  find_java; do_fetch; log "Kafka $KAFKA_VERSION jars are in $LIBS_DIR" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
