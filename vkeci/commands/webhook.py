"""`vkeci webhook`: the mutating admission webhook that routes pods to ECI (README, "Routing pods to ECI").

A process of its own rather than part of `vkeci run`: the daemon is one replica per virtual node and
spends whole seconds of CPU in a 5,000-pod burst (BENCHMARKS.md), while every pod creation in the
cluster waits on this webhook; on its own it answers in about a millisecond, runs as two replicas
behind a Service, and restarts without taking the node NotReady.

Threads: the HTTPS server, the eci-profile watch, the namespace watch, and the certificate check
(renewal, and the caBundle of the MutatingWebhookConfiguration kept in place). SIGTERM or SIGINT stops.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from vkeci.log import fields, get_logger

log = get_logger("webhook")

DEFAULT_SERVICE = "vkeci-webhook"
DEFAULT_NAMESPACE = "vkeci-system"
DEFAULT_CONFIGURATION = "vkeci"
DEFAULT_SECRET = "vkeci-webhook-tls"
IN_CLUSTER_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `vkeci webhook`."""
    parser.add_argument("--config", dest="config_file", help="YAML config file (default: $VKECI_CONFIG)")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)")
    parser.add_argument("--log-level", dest="log_level", help="debug, info, warning or error")
    parser.add_argument("--log-format", dest="log_format", help="text or json")
    parser.add_argument("--listen", default="0.0.0.0", help="address to serve on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8443, help="port to serve on (default 8443; 0 picks one)")
    parser.add_argument(
        "--service",
        default=f"{DEFAULT_SERVICE}.{os.environ.get('POD_NAMESPACE') or DEFAULT_NAMESPACE}",
        help="NAME.NAMESPACE of the webhook's Service: the certificate's DNS names (default "
        f"{DEFAULT_SERVICE}.$POD_NAMESPACE, else {DEFAULT_SERVICE}.{DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--tls-san", action="append", default=[], help="another DNS name or IP of the certificate (repeatable)"
    )
    parser.add_argument("--tls-cert-file", help="serving certificate (default: self-signed, or --tls-csr)")
    parser.add_argument("--tls-key-file", help="key of --tls-cert-file")
    parser.add_argument(
        "--tls-csr", action="store_true", help="get the certificate from the cluster CA (kubelet-serving CSR)"
    )
    parser.add_argument("--tls-csr-approve", action="store_true", help="approve that CSR ourselves")
    default_secret = f"{os.environ['POD_NAMESPACE']}/{DEFAULT_SECRET}" if os.environ.get("POD_NAMESPACE") else ""
    parser.add_argument(
        "--tls-secret",
        default=default_secret,
        metavar="NAMESPACE/NAME",
        help="Secret that shares the self-signed certificate between replicas (default "
        f"$POD_NAMESPACE/{DEFAULT_SECRET} in a pod; '' keeps it in memory, for one replica)",
    )
    parser.add_argument(
        "--webhook-configuration",
        default=DEFAULT_CONFIGURATION,
        help="MutatingWebhookConfiguration whose caBundle is kept trusting the certificate served "
        f"(default {DEFAULT_CONFIGURATION}; '' leaves it alone, e.g. with cert-manager)",
    )
    parser.add_argument(
        "--ca-bundle-file",
        help="CA to write as caBundle with --tls-csr or certificate files (default with --tls-csr: the cluster CA)",
    )
    parser.add_argument(
        "--cert-check-interval", type=float, default=60.0, help="seconds between certificate and caBundle checks"
    )
    parser.add_argument("--profile-namespace", default="kube-system", help="namespace of the eci-profile ConfigMap")
    parser.add_argument("--profile-name", default="eci-profile", help="name of the eci-profile ConfigMap")


def names(service: str, extra: list[str], listen: str) -> list[str]:
    """The certificate's names: the Service's DNS names, ``--tls-san``, and the listen address if it is one IP."""
    found: list[str] = []
    if service:
        name, _, namespace = service.partition(".")
        namespace = namespace or DEFAULT_NAMESPACE
        found += [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    found += extra
    try:
        if not ipaddress.ip_address(listen).is_unspecified:
            found.append(listen)
    except ValueError:
        pass
    return list(dict.fromkeys(found)) or ["127.0.0.1"]


def _cluster_ca(kube: Any) -> str | None:
    verify = kube.credentials.verify
    if isinstance(verify, str):
        return verify
    return IN_CLUSTER_CA if os.path.exists(IN_CLUSTER_CA) else None


def run(args: argparse.Namespace) -> int:
    """Entry point of `vkeci webhook`."""
    from vkeci import config as config_module
    from vkeci import log as logmod
    from vkeci.clients.kube import KubeClient, KubeError, load_credentials
    from vkeci.config import ConfigError
    from vkeci.controllers.namespaces import NamespaceCache
    from vkeci.controllers.profile import ProfileWatcher
    from vkeci.core.admission import Target
    from vkeci.kubelet.tls import CsrIssuer, FileIssuer, SelfSignedIssuer, ServingTls, TlsError
    from vkeci.webhook.admit import Admitter
    from vkeci.webhook.cabundle import CaBundlePublisher, PublishingIssuer
    from vkeci.webhook.server import WebhookServer
    from vkeci.webhook.shared import SharedIssuer

    flags = {"kubeconfig": args.kubeconfig, "log_level": args.log_level, "log_format": args.log_format}
    try:
        config = config_module.load(flags=flags, config_file=args.config_file)
    except ConfigError as err:
        print(f"vkeci webhook: {err}", file=sys.stderr)
        return 2
    logmod.setup(config.log_level, config.log_format)
    target = Target(taint_key=config.taint_key, taint_value=config.taint_value, taint_effect=config.taint_effect)
    try:
        credentials = load_credentials(config.kubeconfig)
    except KubeError as err:
        log.error("cannot reach Kubernetes", extra=fields(error=str(err)))
        return 1
    # Admission runs inside the API server's timeout (3 s in deploy/kustomize/components/webhook): the
    # namespace GET of a cache miss must fail fast rather than turn the pod's creation into a timeout.
    kube = KubeClient(credentials, timeout=2.0, connect_timeout=1.0, user_agent="vkeci-webhook")
    stop = threading.Event()
    profile = ProfileWatcher(
        kube.with_priority(False), namespace=args.profile_namespace, name=args.profile_name, component="vkeci-webhook"
    )
    namespaces = NamespaceCache(kube.with_priority(False))

    san = names(args.service, args.tls_san, args.listen)
    publisher = CaBundlePublisher(kube, args.webhook_configuration) if args.webhook_configuration else None
    issuer: Any
    static_bundle: bytes | None = None
    if args.tls_cert_file and args.tls_key_file:
        issuer = FileIssuer(args.tls_cert_file, args.tls_key_file)
    elif args.tls_csr:
        issuer = CsrIssuer(kube, san[0], san, approve=args.tls_csr_approve)
    elif args.tls_secret:
        secret_namespace, _, secret_name = args.tls_secret.rpartition("/")
        if not secret_namespace or not secret_name:
            print(f"vkeci webhook: --tls-secret {args.tls_secret!r}: expected NAMESPACE/NAME", file=sys.stderr)
            return 2
        issuer = SharedIssuer(kube, secret_namespace, secret_name, SelfSignedIssuer(san[0], san), publisher)
    else:
        issuer = SelfSignedIssuer(san[0], san)
        if publisher is not None:
            issuer = PublishingIssuer(issuer, publisher)
    if not isinstance(issuer, (PublishingIssuer, SharedIssuer)) and publisher is not None:
        ca_file = args.ca_bundle_file or (_cluster_ca(kube) if args.tls_csr else None)
        if ca_file:
            static_bundle = Path(ca_file).read_bytes()
    try:
        tls = ServingTls(issuer, None, purpose="admission webhook", client_certs=False)
    except TlsError as err:
        log.error("no serving certificate", extra=fields(error=str(err)))
        return 1

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    profile.start(stop)
    namespaces.start(stop)
    admitter = Admitter(namespaces.get, profile, target)
    try:
        server = WebhookServer(admitter, tls, host=args.listen, port=args.port, ready=profile.synced.is_set)
    except OSError as err:
        log.error("cannot listen", extra=fields(address=f"{args.listen}:{args.port}", error=str(err)))
        return 1
    server.start()
    # The first line a test or a wrapper script can wait for (the port matters with --port 0).
    print(f"admission webhook: https://{args.listen}:{server.port}/mutate-pods", flush=True)

    def check_certificate() -> None:
        tls.refresh()
        bundle = issuer.bundle if isinstance(issuer, (PublishingIssuer, SharedIssuer)) else static_bundle
        if publisher is not None and bundle:
            try:
                publisher.ensure(bundle)
            except KubeError as err:
                log.warning("caBundle not written, retrying", extra=fields(error=str(err)))

    check_certificate()
    while not stop.wait(args.cert_check_interval):
        try:
            check_certificate()
        except Exception:
            log.exception("certificate check failed, continuing")
    server.stop()
    log.info("stopped")
    return 0
