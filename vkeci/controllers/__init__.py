"""The controllers: the daemon's threads and its policy.

Rule: a controller reaches the world only through ``vkeci.clients`` (typed by the Protocols in
``vkeci.controllers.ports``) and decides with ``vkeci.core``. Each class owns its lock and its
threads and says so in its docstring. Controllers never import ``vkeci.kubelet``,
``vkeci.commands`` or ``vkeci.daemon``.
"""
