"""The composition root of `vkeci run`: builds the clients and controllers, starts their threads.

Threads, each documented by its owner: **heartbeat**, **ping** and **watch-node** (``controllers.node.Heartbeat``),
**watch-eci-profile** (``controllers.profile``), the pod controller's **watch**, **worker-N**,
**status**, **status-write-N**, **events-N**, **sweep** and **resync** (``controllers.pods``), and the
kubelet API's server threads (``kubelet.server``).
Heartbeats use their own Kubernetes session with priority in the rate limiter. SIGTERM or SIGINT
stops everything (``commands.run``); the Node is kept (it goes NotReady after its lease expires)
unless ``--decommission`` is given.

With leader election (the default; ``controllers.leader``) every replica lists and watches the node's pods
(a warm cache), and only the leader runs the rest: registration (which points the node's InternalIP and
kubelet port at the leader), heartbeats, the kubelet API, the reconcile and the pod controller's writers.
Every write of the controllers' clients (Kubernetes and ECI) is gated on ``LeaderElector.may_write``; the
elector, the kubelet API's authentication and the serving certificate use an ungated client. A leader that
loses the Lease stops writing and the process exits (status 1) to come back as a standby.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from vkeci.clients.eci import EciClient
from vkeci.clients.kube import KubeClient, KubeError, load_credentials
from vkeci.clients.ratelimit import kube_bucket
from vkeci.config import Config, HealthSettings, NodeSettings, PodSettings, leader_settings
from vkeci.controllers.clock import monotonic
from vkeci.controllers.clusterinfo import with_cluster_defaults
from vkeci.controllers.health import HealthServer, Liveness
from vkeci.controllers.leader import LeaderElector
from vkeci.controllers.lease import LeaseController
from vkeci.controllers.loops import Backoff, retry_until
from vkeci.controllers.node import Heartbeat, NodeController, decommission
from vkeci.controllers.pods import PodController
from vkeci.controllers.ports import PodTranslator
from vkeci.controllers.profile import ProfileWatcher
from vkeci.controllers.translation import Translation
from vkeci.log import fields, get_logger
from vkeci.metrics import Metrics

log = get_logger("daemon")


class Daemon:
    """Wires the clients and controllers together and runs them until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        timings: NodeSettings,
        options: PodSettings,
        *,
        translator: PodTranslator | None = None,
        eci_limits: dict[str, int] | None = None,
    ) -> None:
        self.config = config
        self.timings = timings
        # The vkeci_* series (/metrics): every client made here counts into them, the state gauges read this.
        self.metrics = Metrics()
        credentials = load_credentials(config.kubeconfig)
        bucket = kube_bucket(config.kube_qps, config.kube_burst)
        self.election = leader_settings(config, socket.gethostname(), uuid.uuid4().hex[:8])
        # The elector writes its Lease on a client of its own (priority, short timeout: a renewal must not
        # hang past its deadline); everything else that writes asks it first.
        self.elector: LeaderElector | None = None
        gate: Callable[[], bool] | None = None
        if self.election.enabled:
            lease_timeout = max(1.0, self.election.renew_deadline / 4)
            elector_kube = KubeClient(
                credentials, limiter=bucket, priority=True, timeout=lease_timeout, meter=self.metrics
            )
            self.elector = LeaderElector(elector_kube, self.election)
            gate = self.elector.may_write
        # Ungated: the kubelet API's TokenReviews/SubjectAccessReviews and the serving certificate's CSR.
        self.api = KubeClient(credentials, limiter=bucket, meter=self.metrics)
        self.kube = KubeClient(credentials, limiter=bucket, meter=self.metrics, write_gate=gate)
        # The cluster DNS and the API server address ECI pods need, from the cluster when not set.
        config = self.config = with_cluster_defaults(config, self.kube)
        # Heartbeats get their own connection pool and the reserved part of the budget.
        self.heartbeat_kube = self.kube.with_priority(True)
        # The node watch has its own connection (a watch holds one for minutes), without priority.
        self.node_watch_kube = self.kube.with_priority(False)
        # One ECI client for the controllers and the kubelet API: one budget, one count (--stats-file).
        # The user agent names the replica (ECI's logs, the fake's call log).
        agent = f"vkeci/{self.election.identity}"
        self.eci = EciClient.from_config(config, eci_limits, self.metrics, write_gate=gate, user_agent=agent)
        self.node = NodeController(self.heartbeat_kube, config)
        self.lease = LeaseController(self.heartbeat_kube, config.node_name, timings.lease_duration)
        # The eci-profile's cluster parameters (kube-system/eci-profile, watched) for pods created after an edit.
        self.profile = ProfileWatcher(self.kube.with_priority(False), component="vkeci")
        self.translator = translator or Translation(config, self.kube, profile=self.profile)
        self.pods = PodController(self.kube, self.eci, config, self.translator, options, metrics=self.metrics)
        # Ready while the pod controller runs; ECI's reachability holds or releases the creates.
        self.heartbeat = Heartbeat(
            self.node,
            self.lease,
            self.eci.ping,
            config.endpoint(),
            timings,
            pods=self.pods,
            on_eci_change=self.pods.eci_changed,
        )
        self.liveness = Liveness(HealthSettings.stale_after)
        self.registered = threading.Event()
        self.lost_leadership = False
        self.metrics.watch(self)

    # ---- the state the scrape-time gauges read (vkeci.metrics.DaemonState) ------------------

    def pods_by_phase(self) -> Mapping[str, int]:
        """The node's pods by phase."""
        return Counter(str((pod.get("status") or {}).get("phase") or "Pending") for pod in self.pods.list_pods())

    def groups_by_status(self) -> Mapping[str, int]:
        """The tracked groups by their last described ECI status."""
        return Counter(record.status or "Unknown" for record in self.pods.groups.records())

    def queue_depth(self) -> int:
        """Pod keys waiting in the work queue."""
        return len(self.pods.queue)

    def status_backlog(self) -> int:
        """Groups waiting to be described."""
        return len(self.pods.status.backlog)

    def lease_renewed_ago(self) -> float | None:
        """Seconds since the lease was last renewed."""
        renewed = self.lease.renewed_at
        return None if renewed is None else monotonic() - renewed

    def eci_healthy(self) -> bool:
        """Whether ECI counts as reachable (core.reachability: sustained failure, not one failed ping)."""
        return self.heartbeat.health.eci_reachable

    def start_health(self, settings: HealthSettings) -> HealthServer:
        """Serve ``/healthz`` and ``/readyz`` (``controllers.health``); raises OSError when it cannot bind."""
        self.liveness.stale_after = settings.stale_after
        server = HealthServer(settings.address, settings.port, self.liveness, self.waiting_for, self.metrics.exposition)
        server.start()
        return server

    def waiting_for(self) -> list[str]:
        """What keeps the daemon from being ready (empty once it is): ``/readyz``. A standby is ready once
        its cache listed the node's pods (ready to take over), so a PodDisruptionBudget counts it."""
        if self.elector is not None and not self.elector.leading.is_set():
            return [] if self.pods.cache.resource_version else ["pod cache list"]
        waiting = [] if self.registered.is_set() else ["node registration"]
        return waiting + ([] if self.pods.synced.is_set() else ["pod cache sync"])

    def start_kubelet_api(self, args: argparse.Namespace) -> Any:
        """Serve the kubelet HTTPS API (logs, exec, stats) on the configured kubelet port."""
        from vkeci.kubelet.auth import Auth
        from vkeci.kubelet.server import KubeletServer, ServerSettings
        from vkeci.kubelet.tls import CsrIssuer, FileIssuer, SelfSignedIssuer, ServingTls, load_client_ca

        addresses = [self.config.internal_ip]
        issuer: Any
        if self.config.tls_cert_file and self.config.tls_key_file:
            issuer = FileIssuer(self.config.tls_cert_file, self.config.tls_key_file)
        elif args.tls_csr:
            issuer = CsrIssuer(self.api, self.config.node_name, addresses, approve=args.tls_csr_approve)
        else:
            issuer = SelfSignedIssuer(self.config.node_name, addresses)
        ca_file = args.client_ca_file or self._default_client_ca()
        tls = ServingTls(issuer, load_client_ca(ca_file) if ca_file else None)
        server = KubeletServer(
            node_name=self.config.node_name,
            pods=self.pods.cache,
            eci=self.eci,
            auth=Auth(self.api, self.config.node_name),
            tls=tls,
            settings=ServerSettings(host=args.kubelet_listen, port=self.config.kubelet_port),
            exposition=self.metrics.exposition,
        )
        server.start()
        return server

    def _default_client_ca(self) -> str | None:
        verify = self.kube.credentials.verify
        if isinstance(verify, str):
            return verify
        in_cluster = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
        return in_cluster if os.path.exists(in_cluster) else None

    def start(self, stop: threading.Event, on_leading: Callable[[], None] = lambda: None) -> list[threading.Thread]:
        """Without leader election: lead at once (``lead``). With it: list and watch the node's pods, then
        run the election (thread **leader-election**); ``on_leading`` and ``lead`` run once this replica
        leads; losing the Lease sets ``stop`` (and ``lost_leadership``)."""
        if self.elector is None:
            on_leading()
            return self.lead(stop)
        elector = self.elector
        self.heartbeat.ping()  # the node's health is known before a take-over: registration comes first
        done, watch = retry_until(
            stop, lambda: self.pods.start_cache(stop, self.liveness), "pod list", log, Backoff(0.5, 30.0), (KubeError,)
        )
        if not done or watch is None:
            return []

        def leading() -> None:
            on_leading()
            self.lead(stop)

        def lost() -> None:
            self.lost_leadership = True
            stop.set()

        thread = threading.Thread(target=elector.run, args=(stop, leading, lost), name="leader-election", daemon=True)
        thread.start()
        return [watch, thread]

    def lead(self, stop: threading.Event) -> list[threading.Thread]:
        """Ping, register (the node's InternalIP and kubelet port become this replica's), start heartbeats,
        then the pod controller (after its reconcile)."""
        if self.elector is None:
            self.heartbeat.ping()
        if not self.heartbeat.register(stop):
            return []
        self.registered.set()
        threads = self.heartbeat.threads(stop, self.liveness, self.node_watch_kube)
        for thread in threads:
            thread.start()
        threads.append(self.profile.start(stop))
        # Pods adopted or created at start-up should see the profile; a missing or unreadable one must not
        # hold the node back (the watch keeps retrying and the daemon's own settings apply meanwhile).
        if not self.profile.synced.wait(5.0):
            log.warning("eci-profile not read yet; the daemon's own settings apply until it is")
        threads += self.pods.start(stop, self.liveness)
        self.heartbeat.refresh()  # Ready now that the pod controller runs
        if not stop.is_set():
            log.info("daemon running", extra=fields(node=self.config.node_name))
        return threads

    def stats(self) -> dict[str, Any]:
        """Requests made so far: Kubernetes by verb and resource, ECI by action (the kubelet API's included)."""
        # Every Kubernetes client made here shares one count (self.metrics): the heartbeat's, the elector's too.
        stats: dict[str, Any] = {
            "kubernetes": dict(self.kube.counts),
            "eci": dict(self.eci.calls),
            "pods_seen": len(self.pods.pods),
        }
        if self.elector is not None:
            stats["leader"] = self.elector.view()
        return stats

    def release(self) -> None:
        """A clean stop: give the leader Lease up, so that a standby takes over at once."""
        if self.elector is not None:
            self.elector.release()

    def decommission(self, stop: threading.Event, timeout: float) -> int:
        """Drain and delete the node (``controllers.node.decommission``) once this replica leads; the exit code."""
        if self.elector is not None:
            while not self.elector.leading.wait(1.0):
                if stop.is_set():
                    return 1
            while not self.pods.synced.wait(1.0):
                if stop.is_set():
                    return 1
        return decommission(self.kube, self.node, self.pods, stop, timeout)
