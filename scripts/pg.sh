#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: initdb into a temp folder, listening on 127.0.0.1 only
# (and a socket in that folder), on a free port; never Debian's cluster on 5432.
#
#   eval "$(scripts/pg.sh start)"   # exports BOOTPOLICY_TEST_POSTGRES=postgres://...  and BP_PG_DIR
#   scripts/pg.sh stop  [DIR]       # stops it and removes the folder
#   scripts/pg.sh kill  [DIR]       # immediate shutdown (a crash), folder kept: `pg.sh restart` brings it back
#   scripts/pg.sh restart [DIR]
#
# Runs the server as the `postgres` user (initdb refuses root).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cmd=${1:-start}
dir=${2:-${BP_PG_DIR:-}}

case "$cmd" in
  start)
    dir=$(mktemp -d /tmp/bp-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$dir/data" -U bootpolicy --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 90 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200 -c recovery_init_sync_method=syncfs" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U bootpolicy bootpolicy
    echo "export BP_PG_DIR=$dir BOOTPOLICY_TEST_POSTGRES=postgres://bootpolicy@127.0.0.1:$port/bootpolicy"
    ;;
  stop)
    [ -n "$dir" ] && [ -d "$dir" ] || exit 0
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  kill)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null
    ;;
  restart)
    port=$(cat "$dir/port")
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 90 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200 -c recovery_init_sync_method=syncfs" start >/dev/null
    ;;
  *) echo "pg.sh: start|stop|kill|restart" >&2; exit 2 ;;
esac
