#!/usr/bin/env bash
# A MariaDB server for tests/test_sql_server.py, on 127.0.0.1:3306 with database `mqbench` and user
# mqbench/mqbench. Installs Debian's mariadb-server when no server binary is present, starts it in the
# background unless one already answers, and waits until it does. Run it as root (CI does); running it
# again is harmless. Afterwards:
#   export MQBENCH_TEST_MYSQL_URL=mysql+pymysql://mqbench:mqbench@127.0.0.1:3306/mqbench
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
PORT=3306
DATADIR=/var/lib/mysql
LOG=/var/log/mqbench-mariadb.log

if [ "$(id -u)" -ne 0 ]; then echo "mariadb.sh: run me as root (it installs and starts a server)" >&2; exit 1; fi

server=$(command -v mariadbd || command -v mysqld || true)
if [ -z "$server" ]; then
  echo "mariadb.sh: installing mariadb-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
  server=$(command -v mariadbd || command -v mysqld)
fi
client=$(command -v mariadb || command -v mysql)
admin=$(command -v mariadb-admin || command -v mysqladmin)

answers() { "$admin" --protocol=tcp -h 127.0.0.1 -P "$PORT" ping >/dev/null 2>&1 || "$admin" ping >/dev/null 2>&1; }

if ! answers; then
  if [ ! -d "$DATADIR/mysql" ]; then
    echo "mariadb.sh: initializing $DATADIR"
    install_db=$(command -v mariadb-install-db || command -v mysql_install_db)
    "$install_db" --user=mysql --datadir="$DATADIR" >/dev/null
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  echo "mariadb.sh: starting $server (log: $LOG)"
  # setsid + nohup: the server outlives this script and the shell that ran it
  setsid nohup "$server" --user=mysql --datadir="$DATADIR" --bind-address=127.0.0.1 --port="$PORT" \
    --socket=/run/mysqld/mysqld.sock >"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    answers && break
    sleep 0.5
  done
  if ! answers; then echo "mariadb.sh: the server did not answer within 60 s; its log:" >&2; tail -n 30 "$LOG" >&2; exit 1; fi
fi

# root logs in through the unix socket on Debian; the test user logs in over TCP with a password
"$client" -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS mqbench;
CREATE USER IF NOT EXISTS 'mqbench'@'127.0.0.1' IDENTIFIED BY 'mqbench';
CREATE USER IF NOT EXISTS 'mqbench'@'localhost' IDENTIFIED BY 'mqbench';
GRANT ALL PRIVILEGES ON mqbench.* TO 'mqbench'@'127.0.0.1';
GRANT ALL PRIVILEGES ON mqbench.* TO 'mqbench'@'localhost';
FLUSH PRIVILEGES;
SQL
echo "mariadb.sh: $("$client" -umqbench -pmqbench -h 127.0.0.1 -P "$PORT" -N -e 'SELECT VERSION()' mqbench) ready on 127.0.0.1:$PORT, database mqbench"
