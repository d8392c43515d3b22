"""vk-eci: a virtual kubelet that runs Kubernetes pods on Alibaba Cloud ECI.

The package is five tiers and the commands on top. An arrow is "may import"; nothing imports
upwards, and ``tests/test_architecture.py`` checks it:

* ``vkeci.core``: pure. Pod -> ECI request, ECI group -> pod status, Events, the Node object.
  Dicts in, dicts out: no I/O, clock, threads or randomness.
* ``vkeci.clients`` -> core: the Kubernetes and ECI clients. Move JSON, classify errors, count
  calls, honour rate limits; no retries and no policy.
* ``vkeci.controllers`` -> clients, core: the threads and the policy. Pod sync (Kubernetes ->
  ECI), status sync (ECI -> Kubernetes), events, reconcile, node and lease, the eci-profile watch.
* ``vkeci.kubelet`` -> clients (errors only), core: the kubelet HTTPS API (logs, exec, stats).
  It reads the daemon only through the Protocols in ``vkeci.kubelet.backend``.
* ``vkeci.webhook`` -> clients (Kubernetes), kubelet (its TLS machinery), core: the admission webhook's
  HTTPS server and certificate (`vkeci webhook`); the decision itself is ``vkeci.core.admission``.
* ``vkeci.commands`` and ``vkeci.daemon`` -> everything: one module per subcommand, and the
  composition root that builds and starts the rest.

``vkeci.config`` (settings) and ``vkeci.log`` (logging) are shared by every tier but core; ``vkeci.metrics``
(the ``vkeci_*`` Prometheus series) by the clients and the controllers, which count into it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # pyproject.toml is the one place the version is written.
    __version__ = version("vkeci")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+source"
