"""The admission webhook that routes pods to ECI without editing workloads (`vkeci webhook`).

- :mod:`.admit`: an HTTP body in, an HTTP answer out (namespace lookup, profile, :mod:`vkeci.core.admission`).
- :mod:`.server`: the HTTPS server (``POST /mutate-pods``, ``GET /healthz``, ``GET /metrics``).
- :mod:`.cabundle`: the caBundle of the MutatingWebhookConfiguration, kept trusting the certificate served.
- :mod:`.shared`: the self-signed certificate the replicas share through a Secret.

The subcommand that wires them with the eci-profile watch and the namespace cache is
:mod:`vkeci.commands.webhook`.
"""
