"""The kubelet HTTPS API of the virtual node: logs, exec, attach, stats and metrics.

The daemon builds a :class:`vkeci.kubelet.server.KubeletServer` and hands it a
:class:`vkeci.kubelet.backend.PodLookup` (its pod cache) and a
:class:`vkeci.kubelet.backend.EciApi` (ECI calls as plain dicts).
"""
