"""The two ways a Pod can fail to translate into an ECI request, as exceptions the daemon acts on.

``Rejected``: the pod can never run on ECI as written (hostPath, privileged, a malformed
annotation...). The daemon marks the pod failed with the message.
``Missing``: something the pod references (a ConfigMap, a Secret, one key of them, a
service-account token) is not there yet. The daemon keeps the pod Pending and retries, the way
a kubelet reports FailedMount / CreateContainerConfigError.

Messages name the field path and the fix; they never contain Secret values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason a pod cannot run on ECI: where (``field``), what (``message``), and what to do (``fix``)."""

    field: str
    message: str
    fix: str = ""
    # The container waiting reason a kubelet shows for it ("" for CreateContainerConfigError).
    waiting_reason: str = ""

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text}; {self.fix}" if self.fix else text


@dataclass(frozen=True)
class MissingRef:
    """A referenced object (or one key of it) that does not exist yet.

    ``kind`` is ``ConfigMap``, ``Secret`` or ``ServiceAccountToken``; ``key`` is set when the object
    exists but lacks the key; ``field`` is the pod field that refers to it.
    """

    kind: str
    name: str
    field: str
    key: str | None = None

    def __str__(self) -> str:
        if self.key is not None:
            return f"{self.field}: {self.kind} {self.name!r} has no key {self.key!r}"
        return f"{self.field}: {self.kind} {self.name!r} not found"


class TranslationError(Exception):
    """Base of the only exceptions translation raises."""


class Rejected(TranslationError):
    """The pod can never run on ECI as written. ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[Problem], pod_ref: str = "") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.pod_ref = pod_ref
        super().__init__(self.__str__())

    def __str__(self) -> str:
        who = f"pod {self.pod_ref}" if self.pod_ref else "the pod"
        count = len(self.problems)
        head = f"{who} cannot run on ECI ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([head, *(f"  - {problem}" for problem in self.problems)])


class Missing(TranslationError):
    """Objects the pod references are not there yet; retry once they exist."""

    def __init__(self, refs: Iterable[MissingRef], pod_ref: str = "") -> None:
        self.refs: tuple[MissingRef, ...] = tuple(refs)
        self.pod_ref = pod_ref
        super().__init__(self.__str__())

    def __str__(self) -> str:
        who = f"pod {self.pod_ref}" if self.pod_ref else "the pod"
        head = f"{who} is waiting for objects it references:"
        lines = [head, *(f"  - {ref}" for ref in self.refs)]
        lines.append("  (create them, or mark the reference `optional: true`; the pod starts once they exist)")
        return "\n".join(lines)
