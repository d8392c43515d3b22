"""The admission webhook that routes pods to ECI without editing workloads (`vkeci webhook`).

- :mod:`.admit`: an HTTP body in, an HTTP answer out (namespace lookup, profile, :mod:`vkeci.core.admission`).
- :mod:`.server`: the HTTPS server (``POST /mutate-pods``, ``GET /healthz``, ``GET /metrics``).
- :mod:`.cabundle`: the caBundle of the MutatingWebhookConfiguration, kept trusting the certificate served.
- :mod:`.command`: the subcommand wiring them with the eci-profile watch and the namespace cache.
"""
