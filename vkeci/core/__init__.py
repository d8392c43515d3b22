"""The pure core: Kubernetes objects in, ECI requests and Kubernetes objects out.

Rule: everything here is a function of its arguments. No module in ``vkeci.core`` imports
``requests``, the ECI SDK, ``threading``, ``time``, ``uuid``, ``random``, ``os`` or another tier of
vkeci, nor asks the clock for the time: the caller passes ``now``. So every fact about
translation can be property-tested without a network, and ``tests/test_architecture.py`` fails
the build when one of these imports creeps in.
"""
