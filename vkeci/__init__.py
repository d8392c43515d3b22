"""vk-eci: a virtual kubelet that runs Kubernetes pods on Alibaba Cloud ECI."""

from importlib.metadata import PackageNotFoundError, version

try:
    # pyproject.toml is the one place the version is written.
    __version__ = version("vkeci")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+source"
