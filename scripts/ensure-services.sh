#!/usr/bin/env bash
# Start the local services the project needs (rabbitmq, postgresql) if they are
# installed but stopped; say plainly what is missing if they are not installed.
set -euo pipefail

ensure_rabbitmq() {
  if rabbitmqctl -q status >/dev/null 2>&1; then return 0; fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not installed. Install it (Debian: apt-get install rabbitmq-server) and run again." >&2
    exit 1
  fi
  echo "starting RabbitMQ..."
  rabbitmq-server -detached
  rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || rabbitmqctl -q wait --timeout 120 --pid "$(pgrep -f beam.smp | head -1)"
  rabbitmqctl -q status >/dev/null
  echo "RabbitMQ is up."
}

ensure_postgresql() {
  if pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is not installed. Install it (Debian: apt-get install postgresql) and run again." >&2
    exit 1
  fi
  echo "starting PostgreSQL..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
}

for service in "$@"; do
  case "$service" in
    rabbitmq) ensure_rabbitmq ;;
    postgresql) ensure_postgresql ;;
    *) echo "unknown service: $service" >&2; exit 2 ;;
  esac
done
