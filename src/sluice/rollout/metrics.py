"""Prometheus series of the rollout control plane (docs/metrics.md, "Rollouts"), on the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from sluice.rollout.deployment import Deployment


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.candidate_weight = Gauge("sluice_rollout_candidate_weight_percent",
                                      "Share of traffic routed to the candidate, as this replica has it in force.",
                                      ["model"], registry=r)
        self.version = Gauge("sluice_rollout_deployment_version",
                             "Version of the deployment in force on this replica (0: the config's).",
                             ["model"], registry=r)
        self.changes = Counter("sluice_rollout_changes",
                               "Deployment changes this replica made (admin API or canary driver), by action.",
                               ["model", "action"], registry=r)
        self.verdicts = Counter("sluice_canary_verdicts",
                                "Canary analyses run by the driver on this replica, by verdict.",
                                ["model", "verdict"], registry=r)
        self.webhook_failures = Counter("sluice_rollout_webhook_failures",
                                        "Webhook deliveries given up on (after retries) or dropped (queue full).",
                                        registry=r)
        self.sync_errors = Counter("sluice_rollout_sync_errors",
                                   "Failed polls of the store for deployment changes or canary work (retried).",
                                   registry=r)

    def in_force(self, deployment: Deployment) -> None:
        self.candidate_weight.labels(deployment.model).set(deployment.candidate_weight if deployment.candidate
                                                           else 0.0)
        self.version.labels(deployment.model).set(deployment.version)


__all__ = ["RolloutMetrics"]
