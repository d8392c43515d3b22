"""ECI instance sizes: the supported vCPU/memory table and how a pod's resources map onto it.

ECI sizes a whole container group, not each container. Its documented rule (ECI guide "Specify
the number of vCPUs and memory size"): per container, limits win over requests; the pod asks for
the sum; with nothing set the size is 2 vCPU / 4 GiB; a size that is not in the table is rounded
*up* to the nearest supported one (7 vCPU / 13 GiB -> 8 / 14 in some regions, 8 / 16 with the
all-region table below). Init containers run one at a time before the app containers, so the pod
needs max(largest init container, sum of app containers), as in Kubernetes' effective request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vkeci.core.quantity import QuantityError, cpu_cores, memory_gib, parse_quantity

# vCPU -> supported memory sizes in GiB, supported in every region (eci-openapi.md §5.4).
SUPPORTED: dict[Decimal, tuple[Decimal, ...]] = {
    Decimal(cpu): tuple(Decimal(m) for m in mems)
    for cpu, mems in (
        ("0.25", ("0.5", "1")),
        ("0.5", ("1", "2")),
        ("1", ("2", "4", "8")),
        ("2", ("1", "2", "4", "8", "16")),
        ("4", ("2", "4", "8", "16", "32")),
        ("8", ("4", "8", "16", "32", "64")),
        ("12", ("12", "24", "48", "96")),
        ("16", ("16", "32", "64", "128")),
        ("24", ("24", "48", "96", "192")),
        ("32", ("32", "64", "128", "256")),
        ("52", ("96", "192", "384")),
        ("64", ("128", "256", "512")),
    )
}
ALL_SPECS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    sorted((cpu, mem) for cpu, mems in SUPPORTED.items() for mem in mems)
)
DEFAULT_SIZE = (Decimal(2), Decimal(4))
GPU_RESOURCE = "nvidia.com/gpu"


class SizeError(ValueError):
    """No supported ECI size is large enough."""


@dataclass(frozen=True)
class ContainerSize:
    """What one container asks for: cores and GiB (``None`` when unset), whole GPUs."""

    cpu: Decimal | None
    memory: Decimal | None
    gpu: int = 0


def round_up(cpu: Decimal, memory: Decimal) -> tuple[Decimal, Decimal]:
    """The smallest supported (vCPU, GiB) that covers both ``cpu`` and ``memory``.

    Smallest means fewest vCPUs, then least memory, which is what ECI bills by.
    Raises SizeError when nothing in the table is big enough.
    """
    for spec_cpu, spec_mem in ALL_SPECS:
        if spec_cpu >= cpu and spec_mem >= memory:
            return spec_cpu, spec_mem
    raise SizeError(f"{fmt(cpu)} vCPU / {fmt(memory)} GiB is larger than any ECI size (at most 64 vCPU / 512 GiB)")


def fmt(value: Decimal) -> str:
    """A Decimal without trailing zeros: 2, 0.25, 1.5."""
    text = format(value.normalize(), "f")
    return text


def _value(resources: Mapping[str, Any], name: str, parse: Any) -> Decimal | None:
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if isinstance(values, Mapping) and values.get(name) is not None:
            return parse(values[name])
    return None


def container_size(container: Mapping[str, Any]) -> ContainerSize:
    """Limits win over requests, per resource. Raises QuantityError on a malformed quantity."""
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        resources = {}
    cpu = _value(resources, "cpu", cpu_cores)
    memory = _value(resources, "memory", memory_gib)
    gpu = _value(resources, GPU_RESOURCE, parse_quantity)
    if gpu is not None and (gpu < 0 or gpu != gpu.to_integral_value()):
        raise QuantityError(f"{GPU_RESOURCE} is {gpu}; expected a whole number of GPUs such as 1")
    return ContainerSize(cpu=cpu, memory=memory, gpu=int(gpu) if gpu is not None else 0)


def _total(sizes: Iterable[ContainerSize]) -> tuple[Decimal | None, Decimal | None]:
    cpu: Decimal | None = None
    memory: Decimal | None = None
    for size in sizes:
        if size.cpu is not None:
            cpu = (cpu or Decimal(0)) + size.cpu
        if size.memory is not None:
            memory = (memory or Decimal(0)) + size.memory
    return cpu, memory


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def requested(
    app: Iterable[ContainerSize], init: Iterable[ContainerSize] = ()
) -> tuple[Decimal | None, Decimal | None]:
    """What the containers ask for, before rounding: (vCPU, GiB), None where no container says."""
    cpu, memory = _total(app)
    for size in init:
        cpu, memory = _max(cpu, size.cpu), _max(memory, size.memory)
    return cpu, memory


def pod_size(app: Iterable[ContainerSize], init: Iterable[ContainerSize] = ()) -> tuple[Decimal, Decimal]:
    """The supported (vCPU, GiB) for a pod. Raises SizeError when the pod is too big for ECI.

    With only memory set, the vCPU count is the smallest that offers that much memory; with only
    CPU set, memory is twice the vCPUs (ECI's default 1:2 ratio); with neither, 2 vCPU / 4 GiB.
    """
    cpu, memory = requested(app, init)
    if cpu is None and memory is None:
        return DEFAULT_SIZE
    if memory is None:
        assert cpu is not None
        memory = cpu * 2
    return round_up(cpu or Decimal(0), memory)


def parse_spec(text: str) -> tuple[Decimal, Decimal] | None:
    """``"2-4Gi"`` -> (2, 4); ``None`` when ``text`` is not of the ``<vCPU>-<GiB>Gi`` form."""
    if not text.endswith("Gi") or text.count("-") != 1:
        return None
    cpu_text, mem_text = text[:-2].split("-")
    try:
        cpu, memory = Decimal(cpu_text), Decimal(mem_text)
    except ArithmeticError:
        return None
    if not cpu.is_finite() or not memory.is_finite() or cpu <= 0 or memory <= 0:
        return None
    return cpu, memory


__all__ = [
    "ALL_SPECS",
    "DEFAULT_SIZE",
    "GPU_RESOURCE",
    "SUPPORTED",
    "ContainerSize",
    "QuantityError",
    "SizeError",
    "container_size",
    "fmt",
    "parse_spec",
    "pod_size",
    "round_up",
]
