#!/bin/sh
# Container entry point: the first argument picks what runs (tini is PID 1 and reaps children).
#   api | trainer | registry | evaluator | deployer | inference   python -m services.<name>.main
#   rq-dashboard                                                   the RQ dashboard on ${TRAINYARD_DASHBOARD_PORT:-9181}
#   bucket-init                                                    create the buckets, enable versioning (one-shot)
#   model-init                                                     write the tiny demo model if the base model is missing
#   healthcheck <service>                                          the compose healthcheck of <service>
#   anything else                                                  run as given (e.g. trainyard --help, bash)
set -eu
service="${1:-api}"
case "$service" in
  api|trainer|registry|evaluator|deployer|inference)
    shift
    if [ "$service" = trainer ]; then
      # RQ refuses a worker name that is still registered. After a SIGKILL the old registration lives on
      # for the worker TTL, and in a container both hostname and PID repeat on restart: name each start.
      export TRAINYARD_WORKER_NAME="${TRAINYARD_WORKER_NAME:-${HOSTNAME:-trainer}-$(date +%s)}"
    fi
    exec python -m "services.${service}.main" "$@" ;;
  rq-dashboard)
    shift
    : "${TRAINYARD_REDIS_URL:?TRAINYARD_REDIS_URL must be set for rq-dashboard}"
    exec rq-dashboard -b "${TRAINYARD_DASHBOARD_BIND:-0.0.0.0}" -p "${TRAINYARD_DASHBOARD_PORT:-9181}" \
      -u "$TRAINYARD_REDIS_URL" "$@" ;;
  bucket-init)
    shift
    exec python /app/docker/bucket_init.py "$@" ;;
  model-init)
    shift
    exec python /app/docker/model_init.py "$@" ;;
  healthcheck)
    shift
    exec python /app/docker/healthcheck.py "$@" ;;
  *)
    exec "$@" ;;
esac
