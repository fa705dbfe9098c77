#!/usr/bin/env bash
# Checks each backing service the component tests use and starts the ones that
# are down (the commands are this machine kind's own start commands). Prints
# one line per service; exits non-zero if one cannot be started.
set -u

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() { # name port
  for _ in $(seq 1 60); do
    up "$2" && return 0
    sleep 1
  done
  echo "services: $1 did not come up on 127.0.0.1:$2" >&2
  return 1
}

start() { # name port command...
  local name=$1 port=$2
  shift 2
  if up "$port"; then
    echo "services: $name is up on 127.0.0.1:$port"
    return 0
  fi
  echo "services: $name is down; starting it"
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "services: cannot start $name: '$1' is not installed" >&2
    return 1
  fi
  "$@" >/dev/null 2>&1 || true
  wait_up "$name" "$port"
}

rc=0
start PostgreSQL 5432 bash -c 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' || rc=1
start Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || rc=1
start RabbitMQ 5672 rabbitmq-server -detached || rc=1
start Mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf || rc=1
start NATS 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || rc=1
start MariaDB 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || rc=1
exit $rc
