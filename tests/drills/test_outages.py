"""Outage drills on the real embedded stack: Redis restarted mid-job (AOF keeps the log), or the S3 server
killed for 30 s right after a checkpoint (mid-upload). Services reconnect with backoff, the trainer keeps
training through the S3 outage, nothing is lost (same invariants as the kill -9 drill), no service process
dies, and every listening socket of the stack is bound to 127.0.0.1.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from services.stack.supervisor import alive, down
from shared import streams
from tests.support.drills import (
    check_invariants,
    children,
    drop_job,
    events,
    job_by_name,
    listening_addresses,
    secrets_in_logs,
    start_stack,
    tiny_model_copy,
    wait,
    wait_flow_done,
)

OUTAGE_S = 30


def max_step(r, job_id: str) -> int:
    return max((e.payload["step"] for e in events(r, streams.METRICS, job_id)), default=0)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["redis", "s3"])
def test_outage_mid_job(fault: str, tiny_model: Path, tmp_path: Path) -> None:
    drill = start_stack(tmp_path, tiny_model_copy(tiny_model, tmp_path))
    r = drill.r
    try:
        state = drill.stack.state
        assert state is not None
        ports = {p.port: p.name for p in state.procs if p.port}
        pids = set().union(*(children(p.pid) for p in state.procs))
        bound = listening_addresses(pids)
        assert set(ports) <= set(bound), f"not listening: {set(ports) - set(bound)}"
        wrong = {port: addr for port, addr in bound.items() if addr not in ("0100007F", "00000000000000000000000001000000")}
        assert not wrong, f"sockets not bound to 127.0.0.1: {wrong}"

        drop_job(drill, "outage", 80, checkpoint_every=10, batch_size=4)
        job_id = wait("the job", lambda: job_by_name(r, "outage"), 120)["id"]
        wait("the first checkpoint", lambda: events(r, streams.CHECKPOINTS, job_id), 600, every=0.1)
        if fault == "redis":
            # a clean restart (SIGTERM flushes the AOF); every service must reconnect and training go on
            drill.note(f"redis restart at step {max_step(r, job_id)}")
            drill.stack.kill("redis", sig=signal.SIGTERM)
            drill.stack.restart("redis")
            r.connection_pool.disconnect()
            trainer = drill.stack.proc("trainer")

            def going_on() -> bool:
                assert alive(trainer.pid), "the trainer process exited after the Redis restart"
                return len(events(r, streams.CHECKPOINTS, job_id)) >= 2

            wait("training to go on after the Redis restart", going_on, 300, every=0.2)
        else:
            # S3 killed right after a checkpoint was published, i.e. while the registry uploads it
            seen = len(events(r, streams.CHECKPOINTS, job_id))
            wait("the next checkpoint", lambda: len(events(r, streams.CHECKPOINTS, job_id)) > seen, 300, every=0.05)
            drill.stack.kill("s3")
            before = max_step(r, job_id)
            drill.note(f"s3 down at step {before}")
            time.sleep(OUTAGE_S)
            during = max_step(r, job_id)
            drill.note(f"s3 back at step {during}")
            drill.stack.restart("s3")
            assert during > before, "the trainer stopped training while S3 was down"
        dead = [p.name for p in drill.stack.state.procs if not alive(p.pid)]
        assert not dead, f"processes died during the outage: {dead}"
        wait_flow_done(drill, job_id)
        from services.deployer.projection import list_deployments

        assert list_deployments(r)[0]["status"] == "verified", list_deployments(r)
        check_invariants(drill, [job_id])
        assert not secrets_in_logs(drill), secrets_in_logs(drill)
    finally:
        (tmp_path / "drill.log").write_text("\n".join(drill.log) + "\n")
        print("\n".join(drill.log))
        down(drill.state_dir)
