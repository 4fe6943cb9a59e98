#!/usr/bin/env bash
# A three-node MariaDB Galera cluster and a PostgreSQL primary with a synchronous streaming
# standby, all on this machine, for the cluster tests (tests/cluster.rs).
#
#   scripts/cluster.sh start      start everything; prints the `export` lines the tests read
#   scripts/cluster.sh env        print those lines again
#   scripts/cluster.sh stop       stop everything and remove the data directories
#   scripts/cluster.sh status     one line per server
#
# Everything lives under $JIESUAN_CLUSTER_DIR (default /tmp/jiesuan-cluster). Nothing is
# installed as a service and no system file is changed: the servers run as the `mysql` and
# `postgres` system users (PostgreSQL refuses root) on their own ports.
# Galera node i (1..3): SQL port 4305+i, group port 4557+10i, IST 4558+10i, SST 4559+10i.
# PostgreSQL: primary 5441, standby 5442.
set -euo pipefail

DIR="${JIESUAN_CLUSTER_DIR:-/tmp/jiesuan-cluster}"
PGBIN=/usr/lib/postgresql/15/bin
GALERA=/usr/lib/galera/libgalera_smm.so
PG_PRIMARY_PORT=5441
PG_STANDBY_PORT=5442

galera_port() { echo $((4305 + $1)); }
gcomm_port() { echo $((4557 + 10 * $1)); }

as_user() { # as_user USER CMD...: run a server command as its system user when we are root
  local user=$1
  shift
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

need_packages() {
  local need=()
  for pkg in galera-4 rsync mariadb-server postgresql-15; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 "$((secs * 2))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "cluster.sh: timed out waiting for $what" >&2
  return 1
}

node_sql() { # node_sql I SQL
  mariadb -h 127.0.0.1 -P "$(galera_port "$1")" -uroot -N -e "$2"
}

node_synced() {
  [ "$(node_sql "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" | cut -f2)" = Synced ]
}

galera_config() { # galera_config I
  local i=$1 d="$DIR/galera/n$1"
  local addrs="127.0.0.1:$(gcomm_port 1),127.0.0.1:$(gcomm_port 2),127.0.0.1:$(gcomm_port 3)"
  cat >"$d/my.cnf" <<CNF
[mysqld]
datadir=$d/data
socket=$d/mysqld.sock
port=$(galera_port "$i")
bind-address=127.0.0.1
pid-file=$d/mysqld.pid
log-error=$d/error.log
user=mysql
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
max_connections=300
# Causal reads: a read waits until this node has applied what the cluster committed before it,
# so a shopper who paid through one instance sees it paid through another.
wsrep_sync_wait=1
wsrep_on=ON
wsrep_provider=$GALERA
wsrep_cluster_name=jiesuan
wsrep_cluster_address=gcomm://$addrs
wsrep_node_address=127.0.0.1:$(gcomm_port "$i")
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$i");ist.recv_addr=127.0.0.1:$((4558 + 10 * i));gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$((4559 + 10 * i))
CNF
}

# Starts node I (already initialised); the first node of a new cluster passes --wsrep-new-cluster.
galera_start_node() { # galera_start_node I [--wsrep-new-cluster]
  local i=$1 d="$DIR/galera/n$1"
  shift
  (setsid mariadbd --defaults-file="$d/my.cnf" "$@" >>"$d/stdout.log" 2>&1 &)
  wait_for 120 "galera node $i to be Synced" node_synced "$i"
}

galera_start() {
  for i in 1 2 3; do
    local d="$DIR/galera/n$i"
    mkdir -p "$d/data"
    chown -R mysql:mysql "$d" 2>/dev/null || true
    galera_config "$i"
    mariadb-install-db --defaults-file="$d/my.cnf" --user=mysql --datadir="$d/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$d/install.log" 2>&1
  done
  galera_start_node 1 --wsrep-new-cluster
  node_sql 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test"
  galera_start_node 2
  galera_start_node 3
}

pg_start() {
  local p="$DIR/pg"
  mkdir -p "$p"
  chown postgres: "$p" "$DIR" 2>/dev/null || true
  chmod 755 "$DIR"
  as_user postgres "$PGBIN/initdb" -D "$p/primary" -U postgres --auth=trust -E UTF8 >"$p/initdb.log"
  cat >>"$p/primary/postgresql.conf" <<CNF
listen_addresses='127.0.0.1'
unix_socket_directories='$p'
max_connections=200
wal_level=replica
max_wal_senders=5
hot_standby=on
fsync=on
CNF
  echo "host replication postgres 127.0.0.1/32 trust" >>"$p/primary/pg_hba.conf"
  # Synchronous: a commit returns only when the standby has it, so a failover loses nothing
  # that was acknowledged. Given on the command line so the copy the standby is made from does
  # not carry it (the promoted standby would otherwise wait for a standby it does not have).
  as_user postgres "$PGBIN/pg_ctl" -D "$p/primary" -l "$p/primary.log" -w start \
    -o "-p $PG_PRIMARY_PORT -c synchronous_standby_names=* -c synchronous_commit=on" >/dev/null
  as_user postgres "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U postgres \
    -D "$p/standby" -R -X stream -c fast
  as_user postgres "$PGBIN/pg_ctl" -D "$p/standby" -l "$p/standby.log" -w start \
    -o "-p $PG_STANDBY_PORT" >/dev/null
  wait_for 60 "the standby to stream synchronously" sh -c \
    "psql -h 127.0.0.1 -p $PG_PRIMARY_PORT -U postgres -Atc \"SELECT sync_state FROM pg_stat_replication\" | grep -qx sync"
  psql -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U postgres -qc "CREATE DATABASE test"
}

pg_stop() {
  for n in standby primary; do
    if [ -f "$DIR/pg/$n/postmaster.pid" ]; then
      as_user postgres "$PGBIN/pg_ctl" -D "$DIR/pg/$n" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
}

print_env() {
  for i in 1 2 3; do
    echo "export JIESUAN_GALERA_$i=mysql://root@127.0.0.1:$(galera_port "$i")/test"
  done
  echo "export JIESUAN_PG_PRIMARY=postgres://postgres@127.0.0.1:$PG_PRIMARY_PORT/test"
  echo "export JIESUAN_PG_STANDBY=postgres://postgres@127.0.0.1:$PG_STANDBY_PORT/test"
  echo "export JIESUAN_PG_DATA=$DIR/pg"
  echo "export JIESUAN_CLUSTER_SCRIPT=$(cd "$(dirname "$0")" && pwd)/cluster.sh"
}

stop_all() {
  for i in 3 2 1; do
    local pid="$DIR/galera/n$i/mysqld.pid"
    if [ -f "$pid" ]; then kill "$(cat "$pid")" 2>/dev/null || true; fi
  done
  pg_stop
  for i in 1 2 3; do
    local pid="$DIR/galera/n$i/mysqld.pid"
    wait_for 60 "galera node $i to stop" sh -c "! [ -f $pid ] || ! kill -0 \$(cat $pid)" || true
  done
  rm -rf "$DIR"
}

case "${1:-}" in
start)
  need_packages
  if [ -e "$DIR" ]; then stop_all; fi
  mkdir -p "$DIR"
  galera_start
  pg_start
  print_env
  ;;
env) print_env ;;
stop) stop_all ;;
# The kill tests call these. kill-galera I: kill -9 node I's mariadbd; start-galera I: start it
# again and wait until it is Synced (it rejoins through IST/SST).
kill-galera) kill -9 "$(cat "$DIR/galera/n$2/mysqld.pid")" ;;
start-galera) galera_start_node "$2" ;;
# kill-pg-primary: kill -9 the primary's postmaster; promote-pg-standby: pg_ctl promote.
kill-pg-primary) kill -9 "$(head -n1 "$DIR/pg/primary/postmaster.pid")" ;;
# restart-pg: a fresh primary and standby again (the failover test starts with it).
restart-pg)
  pg_stop
  rm -rf "$DIR/pg"
  pg_start
  ;;
promote-pg-standby) as_user postgres "$PGBIN/pg_ctl" -D "$DIR/pg/standby" -w promote >/dev/null ;;
status)
  for i in 1 2 3; do
    echo "galera n$i: $(node_sql "$i" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2 || echo down)"
  done
  for n in primary standby; do
    echo "pg $n: $(as_user postgres "$PGBIN/pg_ctl" -D "$DIR/pg/$n" status >/dev/null 2>&1 && echo running || echo down)"
  done
  ;;
*)
  echo "usage: $0 start|env|stop|status|kill-galera I|start-galera I|restart-pg|kill-pg-primary|promote-pg-standby" >&2
  exit 2
  ;;
esac
