"""``trainyard up --role``: which services each box runs, and the pre-flight check that the peers a role uses
but does not start (the training box's Redis and S3) answer, with one line naming what to start if not."""

from __future__ import annotations

from services.stack.servers import ServerError, port_open
from shared.settings import StackSettings

SERVICES = ("registry", "evaluator", "deployer", "trainer", "inference", "api")
# ``trainyard up --role``: the training box runs Redis, S3 and everything but the model serving; the inference
# box runs inference and the evaluator, connected to the training box's Redis and S3 only.
ROLES = {
    "all": SERVICES,
    "training": ("registry", "deployer", "trainer", "api"),
    "inference": ("evaluator", "inference"),
}


class PeerUnreachable(ServerError):
    """A box's peer (the training box's Redis or S3) does not answer: one line naming it and what to start."""


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def check_peers(settings: StackSettings, role: str, external_s3: bool) -> None:
    """The endpoints a role uses but does not start must answer now; else PeerUnreachable."""
    peers = []
    if role == "inference":
        start = "start `trainyard up --role training` on the training box first, bound to an address this box " \
                "reaches (TRAINYARD_BIND)"
        peers = [("Redis", settings.redis_url, "TRAINYARD_REDIS_URL", 6379, start),
                 ("S3", settings.s3_endpoint, "TRAINYARD_S3_ENDPOINT", 9000, start)]
    elif external_s3:
        peers = [("S3", settings.s3_endpoint, "TRAINYARD_S3_ENDPOINT", 9000,
                  "start your S3/MinIO server there, or unset TRAINYARD_EXTERNAL_S3 to run the embedded one")]
    for what, url, var, default_port, start in peers:
        host, port = _host_port(url, default_port)
        try:
            reachable = port_open(host, port)
        except OSError:  # an unknown host name
            reachable = False
        if not reachable:
            raise PeerUnreachable(f"cannot reach the training box's {what} at {host}:{port} ({var}): {start}")
