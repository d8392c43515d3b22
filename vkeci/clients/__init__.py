"""The I/O adapters: the Kubernetes API client, the ECI client, their rate limits.

Rule: a client moves JSON, turns failures into one error class per service (``KubeError``,
``EciError``) that says whether retrying helps, counts its calls and waits for its rate limit.
It never retries and never decides what to do about an error; the controllers do.
Clients may import ``vkeci.core``, ``vkeci.config`` and ``vkeci.log``, nothing above.
"""
