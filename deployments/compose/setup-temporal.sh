#!/bin/sh
# Temporal's setup for the compose stack, run in the temporalio/admin-tools
# image. Each step can run again on the next `docker compose up`.
#   setup-temporal.sh schema     before the server: databases and schemas
#   setup-temporal.sh namespace  once it answers: the namespace and relman's
#                                search attributes
set -eu

sql() {
  temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u temporal "$@"
}

case "${1:-}" in
schema)
  for db in temporal temporal_visibility; do
    dir=temporal
    [ "$db" = temporal_visibility ] && dir=visibility
    # create and setup-schema refuse to run twice; update-schema after them
    # fails if the database is not there or not right.
    sql --db "$db" create || true
    sql --db "$db" setup-schema -v 0.0 || true
    sql --db "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
  done
  ;;
namespace)
  ns="${TEMPORAL_NAMESPACE:-default}"
  tries=0
  until temporal operator cluster health; do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || { echo "Temporal at $TEMPORAL_ADDRESS did not become healthy" >&2; exit 1; }
    sleep 2
  done
  # 30 days, the manager's min_retention: past it, relman's closed-
  # transaction records answer. Stated on every run, for a namespace made
  # before too.
  temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1 ||
    temporal operator namespace create --namespace "$ns" --retention 30d
  temporal operator namespace update --namespace "$ns" --retention 30d
  # The search attributes relman sets on every transaction (workflows/types.go).
  for sa in RelmanProject RelmanEnv RelmanStatus RelmanRequester RelmanManager; do
    temporal operator search-attribute list --namespace "$ns" | grep -qw "$sa" ||
      temporal operator search-attribute create --namespace "$ns" --name "$sa" --type Keyword
  done
  ;;
*)
  echo "usage: setup-temporal.sh schema|namespace" >&2
  exit 2
  ;;
esac
