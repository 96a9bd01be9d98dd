#!/bin/bash
# SeaweedFS in one process (master, volume, filer, S3 gateway) as a drop-in for MinIO in compose:
# the same MINIO_ROOT_USER / MINIO_ROOT_PASSWORD variables become its only S3 identity, S3 listens on
# 0.0.0.0:${S3_PORT:-9000} (the container network), everything else stays on the container's loopback.
# Data lives in /data (the s3-data volume); the internal ports are fixed, so a restart finds its volumes.
set -euo pipefail
: "${MINIO_ROOT_USER:?MINIO_ROOT_USER (the S3 access key) must be set}"
: "${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD (the S3 secret key) must be set}"
umask 077
mkdir -p /data/weed /data/config
cat > /data/config/s3.json <<JSON
{"identities": [{"name": "trainyard",
  "credentials": [{"accessKey": "${MINIO_ROOT_USER}", "secretKey": "${MINIO_ROOT_PASSWORD}"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
exec weed server -dir=/data/weed -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=9333 -master.port.grpc=19333 -master.electionTimeout=1s -master.volumeSizeLimitMB=1024 \
  -volume.port=8080 -volume.port.grpc=18080 -volume.max=0 \
  -filer -filer.port=8888 -filer.port.grpc=18888 \
  -s3 -s3.port="${S3_PORT:-9000}" -s3.port.grpc=18333 -s3.ip.bind=0.0.0.0 -s3.config=/data/config/s3.json \
  -s3.port.iceberg=0 -s3.port.lance=0 -metricsPort=0 "$@"
