"""How much each scenario does: the default run (about eight minutes here) and the smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes of one harness run."""

    repetitions: int = 3
    # 1. Pipeline overhead: sequential pipelines per repetition, and pipelines in flight.
    latency_samples: int = 40
    throughput_pipelines: int = 500
    submitters: int = 8  # concurrent HTTP clients posting the in-flight pipelines
    # 2. Rollback against a fresh deploy, with the local runner and examples/hello.
    rollback_samples: int = 3
    # 3. Build stage of a new commit against the same commit again (local builder).
    cache_samples: int = 5
    # 4. Build farm: worker processes, builds per worker per repetition, wait per build.
    farm_workers: tuple[int, ...] = (1, 2, 4, 8)
    farm_rounds: int = 4
    farm_build_seconds: float = 1.0
    # 5. History query over this many deployments of one environment.
    history_deployments: int = 100_000
    history_queries: int = 300
    # 6. API under load: uvicorn worker counts, connections, seconds per measurement.
    api_workers: tuple[int, ...] = (1, 2, 4)
    load_connections: int = 16
    load_seconds: float = 5.0
    # 7. Serving through the router: deploys and rollbacks per repetition (each timed until the
    # stable URL serves the release) under keep-alive clients, then sequential GETs timed
    # directly and through the router, interleaved.
    serving_samples: int = 10
    serving_clients: int = 4
    router_latency_requests: int = 2000
    # 8. Artifacts through a registry: the artifact's size (random bytes, 10^6-byte MB), and
    # pushes and pulls per repetition (each beside its plain HTTP counterpart); then the build
    # farm again (sizes above) with the registry as the artifact store.
    registry_artifact_mb: int = 50
    registry_samples: int = 3
    # 9. Run hosts: an environment spread over each count of hosts, deploy and rollback pairs
    # per repetition under keep-alive load through every router, then one host lost.
    hosts_counts: tuple[int, ...] = (1, 2, 4)
    hosts_samples: int = 3
    # 10. Code-only deploys of examples/flask-blog per repetition (its dependencies reused).
    code_deploy_samples: int = 5
    # 11. CLI start-up: runs of each command per repetition.
    cli_samples: int = 15
    # 12. HTTPS: keep-alive GETs per path (direct, router over HTTP, over HTTPS), and seconds of
    # back-to-back full TLS handshakes, per repetition.
    tls_latency_requests: int = 2000
    tls_handshake_seconds: float = 5.0

    @property
    def commits_needed(self) -> int:
        # Each sequential sample twice (through the pools, then in process), and one pipeline
        # for the statement count.
        samples = 2 * self.latency_samples + 1
        overhead = self.repetitions * (samples + self.throughput_pipelines) + 10
        # Scenario 4's farm, and scenario 8's farm on the registry.
        farm = 2 * sum(k * (self.farm_rounds * self.repetitions + 1) for k in self.farm_workers)
        return overhead + farm + self.repetitions * (self.cache_samples + self.rollback_samples)


DEFAULT = Plan()

# Tiny sizes, one repetition: `make test` runs this so that the harness cannot rot.
SMOKE = Plan(
    repetitions=1,
    latency_samples=3,
    throughput_pipelines=10,
    submitters=4,
    rollback_samples=1,
    cache_samples=1,
    farm_workers=(1, 2),
    farm_rounds=1,
    farm_build_seconds=0.2,
    history_deployments=1_000,
    history_queries=20,
    api_workers=(1, 2),
    load_connections=4,
    load_seconds=1.0,
    serving_samples=2,
    router_latency_requests=200,
    tls_latency_requests=100,
    tls_handshake_seconds=0.5,
    registry_artifact_mb=2,
    registry_samples=1,
    hosts_counts=(1, 2),
    hosts_samples=1,
    code_deploy_samples=1,
    cli_samples=2,
)
