"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("trainyard_inference_requests_total", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("trainyard_inference_request_seconds", "HTTP request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.completions = Counter("trainyard_inference_completions_total", "Completions by model and result",
                                   ["model", "result"], registry=r)
        self.tokens = Counter("trainyard_inference_tokens_total", "Tokens processed", ["kind"], registry=r)
        self.batch_size = Histogram("trainyard_inference_batch_size", "Requests per generate call",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32), registry=r)
        self.batch_seconds = Histogram("trainyard_inference_batch_seconds", "Duration of one generate call",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.adapter_loads = Counter("trainyard_inference_adapter_loads_total",
                                     "Adapter loads, replacements, unloads and failed loads", ["result"],
                                     registry=r)
        self.active_adapters = Gauge("trainyard_inference_active_adapters", "Adapters resident on the base",
                                     registry=r)
        self.uploads = Counter("trainyard_inference_uploads_total", "Adapter uploads by result", ["result"],
                               registry=r)

    def observe_batch(self, size: int, seconds: float, completion_tokens: int, prompt_tokens: int) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.tokens.labels(kind="completion").inc(completion_tokens)
        self.tokens.labels(kind="prompt").inc(prompt_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
