"""Container healthchecks: ``python docker/healthcheck.py <service>`` exits 0 when the service works.

* api, inference: ``GET /ready`` on the service's port answers 200 (``/health`` where /ready is absent).
* rq-dashboard: its page answers below 500.
* trainer: an RQ worker of this container (same hostname) is registered in Redis.
* registry, evaluator, deployer: this container's consumer (name containing the hostname) is in the
  service's consumer group and has talked to Redis within ``TRAINYARD_HEALTH_IDLE_S`` (default 900 s, so
  a long snapshot or deployment does not count as dead).

One line on stdout says what was checked; docker keeps it in ``docker inspect``.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request

HTTP_PORTS = {"api": ("TRAINYARD_PORT", 8080), "inference": ("TRAINYARD_INFERENCE_PORT", 8000),
              "rq-dashboard": ("TRAINYARD_DASHBOARD_PORT", 9181)}
GROUPS = {"registry": "registry", "evaluator": "evaluator", "deployer": "deployer"}


class Unhealthy(Exception):
    """The check ran and the service is not working."""


def http_status(url: str, timeout: float = 4.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        raise Unhealthy(f"{url}: {exc}") from exc


def check_http(service: str) -> str:
    env, default = HTTP_PORTS[service]
    base = f"http://127.0.0.1:{os.environ.get(env, default)}"
    if service == "rq-dashboard":
        code = http_status(f"{base}/")
        if code >= 500:
            raise Unhealthy(f"{base}/ answered {code}")
        return f"{base}/ answered {code}"
    code = http_status(f"{base}/ready")
    if code == 404:
        code = http_status(f"{base}/health")
    if code != 200:
        raise Unhealthy(f"{base} not ready ({code})")
    return f"{base} ready"


def _redis():
    import redis

    url = os.environ.get("TRAINYARD_REDIS_URL", "redis://127.0.0.1:6379/0")
    return redis.Redis.from_url(url, socket_timeout=4, socket_connect_timeout=4)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def check_trainer() -> str:
    from rq import Worker

    host = socket.gethostname()
    workers = Worker.all(connection=_redis())
    mine = [w for w in workers if (w.hostname or "") == host]
    if not mine:
        raise Unhealthy(f"no RQ worker registered from host {host} ({len(workers)} worker(s) in total)")
    return f"RQ worker(s) {', '.join(w.name for w in mine)}: {', '.join(str(w.get_state()) for w in mine)}"


def check_consumer(service: str) -> str:
    from shared import streams

    r = _redis()
    group = GROUPS[service]
    host = socket.gethostname()
    max_idle_ms = float(os.environ.get("TRAINYARD_HEALTH_IDLE_S", "900")) * 1000
    seen: list[str] = []
    group_found = False
    for stream in streams.ALL:
        try:
            groups = {_text(g["name"]) for g in r.xinfo_groups(stream)}
        except Exception:  # noqa: BLE001 - the stream does not exist (yet)
            continue
        if group not in groups:
            continue
        group_found = True
        for consumer in r.xinfo_consumers(stream, group):
            name = _text(consumer["name"])
            seen.append(name)
            if host in name and consumer["idle"] <= max_idle_ms:
                return f"consumer {name} in group {group} on {stream}, idle {consumer['idle'] / 1000:.1f}s"
    if not group_found:
        raise Unhealthy(f"consumer group {group!r} not found on any stream yet")
    raise Unhealthy(f"no live consumer of host {host} in group {group!r} (consumers: {', '.join(sorted(set(seen)))})")


def check(service: str) -> str:
    if service in HTTP_PORTS:
        return check_http(service)
    if service == "trainer":
        return check_trainer()
    if service in GROUPS:
        return check_consumer(service)
    raise SystemExit(f"healthcheck: unknown service {service!r}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: healthcheck.py <service>\n")
        return 2
    try:
        sys.stdout.write(f"healthy: {check(argv[0])}\n")
        return 0
    except Unhealthy as exc:
        sys.stdout.write(f"unhealthy: {exc}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. Redis down: unhealthy, with the reason
        sys.stdout.write(f"unhealthy: {type(exc).__name__}: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
