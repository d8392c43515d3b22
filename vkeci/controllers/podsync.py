"""Kubernetes → ECI: how a pod gets its container group, and how the group goes away.

``PodSync`` runs the **worker-N** threads. Each takes a pod key from the per-key work queue (one
worker per pod at a time, so the per-pod state here needs no lock of its own) and makes ECI match
the pod:

* a new pod is translated and created idempotently (ClientToken = pod UID; a retried create looks
  for the group first and adopts what a lost answer created, keeping the oldest of duplicates);
* while the start-up reconcile still lists, a pod without a known group is looked up by its UID before
  it is created (a ClientToken is remembered for a limited time only), and a pod that has had a group
  (its write-back annotation says so) waits for the listing to adopt it;
* a pod with a deletionTimestamp has its group deleted, the deletion confirmed by a describe, and
  only then the pod object removed (grace 0, UID precondition);
* a finished pod's group is kept ``finished_retention`` seconds for ``kubectl logs``, then deleted;
* a running pod gets the write-back annotations, and a Warning if its images drifted;
* a pod whose group was deleted outside vk-eci (``StatusSync`` found it, ``GroupIndex`` holds the
  ``Restart``) gets its next group attempt: first the restart status and the attempt annotation are
  written (so a restarted daemon sends the same attempt's ClientToken), then, after the kubelet's
  back-off, the create.

Every failure is retried with backoff, none is dropped; a pod that cannot run on ECI gets a status
and one Warning that say why.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from vkeci.clients.eci import EciError
from vkeci.clients.kube import KubeError, pod_path
from vkeci.controllers.clock import utcnow
from vkeci.controllers.groups import GroupRecord, Restart
from vkeci.controllers.shared import Part, Shared
from vkeci.controllers.statussync import StatusSync, StatusWriter
from vkeci.core import identity
from vkeci.core.annotations import CLIENT_TOKEN, INSTANCE_ID
from vkeci.core.identity import queue_key, uid_of
from vkeci.core.node import ECI_UNREACHABLE_REASON
from vkeci.core.problems import Missing, Rejected, TranslationError
from vkeci.core.restarts import restart_policy
from vkeci.core.status import DELETED_REASON, TERMINAL, deleted_message, env_error, restart_annotations
from vkeci.core.translate import DAEMONSET_MESSAGE, DAEMONSET_REASON, is_daemonset_pod
from vkeci.core.writeback import GROUP_ID_ANNOTATION, image_drift, missing_annotations, verdict
from vkeci.log import fields, get_logger

log = get_logger("pods")
JSON = dict[str, Any]


class PodSync(Part):
    """Makes ECI match the pods; see the module docstring."""

    def __init__(self, shared: Shared, writer: StatusWriter, status: StatusSync) -> None:
        super().__init__(shared)
        self.writer = writer
        self.status = status
        self.last_warning: dict[str, str] = {}  # uid -> last one-off problem reported (dedup of events)

    def worker_loop(self, stop: threading.Event) -> None:
        """Process keys until ``stop``; every failure is retried with backoff, none is dropped."""
        while not stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                again = self.sync(str(key))
                self.queue.forget(key)
                if again:
                    self.queue.add_after(key, again)
            except Exception as exc:  # one pod's failure must not stop the worker
                # A pod waiting for a ConfigMap/Secret is looked at again within 10 s, as a kubelet would.
                cap = self.settings.missing_retry if isinstance(exc, TranslationError) else None
                refused = isinstance(exc, EciError) and not exc.transient
                delay = self.queue.retry(key, cap, floor=self.settings.refused_retry if refused else 0.0)
                self.metrics.queue_retries.labels(_error_class(exc)).inc()
                # Expected failures (ECI or API errors, objects not there yet) need no traceback.
                expected = isinstance(exc, (EciError, KubeError, TranslationError))
                forbidden = isinstance(exc, KubeError) and exc.forbidden  # the admin must act: not just info
                log.log(
                    logging.WARNING if forbidden else logging.INFO if expected else logging.ERROR,
                    "pod sync failed, will retry",
                    extra=fields(pod=key, error=str(exc), retry_in=round(delay, 2)),
                    exc_info=not expected,
                )
            finally:
                self.queue.done(key)

    def sync(self, key: str) -> float | None:
        """Make ECI match the pod ``key``; return seconds after which to look again, or None."""
        pod = self.cache.pod(key)
        stale = [u for u in self.groups.uids_for(key) if pod is None or u != uid_of(pod)]
        for uid in stale:
            self.delete_group(uid)  # the pod was force-deleted or re-created under the same name
            self.groups.drop_restarts(uid)
        if pod is None:
            return None
        uid = uid_of(pod)
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            return self._finish_deletion(pod)
        if status.get("phase") in TERMINAL:
            record = self.groups.get(uid)
            if record is None:
                return None
            # A finished group costs nothing and keeps `kubectl logs` working for a while.
            keep = record.finished_at + self.settings.finished_retention - self.clock() if record.finished_at else 0
            if keep > 0:
                return keep
            self.delete_group(uid)
            return None
        record = self.groups.get(uid)
        if record is not None:
            if record.verdict is not None and record.verdict != verdict(status):
                self.status.describe_again(record.group_id)  # someone else wrote over our status
            if record.group is not None and not record.annotated:
                self._annotate(pod, record)
            if record.group is not None:
                drift = image_drift(pod, record.group)
                if drift:
                    self._warn_once(pod, "SpecChangeNotApplied", drift)
            return None
        restart = self.groups.pending_restart(uid)
        if restart is not None:
            return self._recreate(pod, restart)
        if uid in self.groups.lost_uids:
            return None
        if not self.cache.synced.is_set() and GROUP_ID_ANNOTATION in (meta.get("annotations") or {}):
            return None  # its group is on a page still to come: the reconcile queues the pod when it adopts it
        if self._lost_while_away(pod):
            return None
        if is_daemonset_pod(pod):
            status = self.translator.problem_status(pod, DAEMONSET_REASON, DAEMONSET_MESSAGE, utcnow())
            self._report(pod, status, "Warning", DAEMONSET_REASON, DAEMONSET_MESSAGE)
            return None
        return self._create(pod)

    def _lost_while_away(self, pod: JSON) -> bool:
        """Whether the pod's group was deleted while no daemon was watching (then handled as any lost group).

        The write-back annotations name the group of the pod's current attempt once it was seen (the
        ClientToken they name is this attempt's); if a describe by id no longer finds it, it is gone.
        A group that is still there but not tracked yet (the start-up adoption has not reached it) is
        adopted. Costs one describe, only for a pod without a tracked group that carries them."""
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        gid = str(annotations.get(INSTANCE_ID) or "")
        if not gid or annotations.get(CLIENT_TOKEN) != identity.client_token(pod):
            return False
        uid, key = uid_of(pod), queue_key(pod)
        found = [g for g in self.eci.describe([gid], with_event=True) if _alive(g)]
        mine = [g for g in found if identity.tag_map(g.get("Tags") or []).get(identity.TAG_UID) == uid]
        if mine:
            self.adopt(uid, key, mine)
            return True
        if found:
            return False  # not this pod's group after all: create one
        record = GroupRecord(uid=uid, key=key, group_id=gid, seen_at=self.clock(), attempt=identity.attempt_of(pod))
        log.info("group gone while the daemon was away", extra=fields(pod=key, group=gid))
        self.status.lost(record, pod)
        return True

    def _recreate(self, pod: JSON, restart: Restart) -> float | None:
        """Create the pod's next group attempt after its group was deleted outside vk-eci.

        The restart status and the attempt annotation go first, in one write: the create's
        ClientToken is derived from the annotation, so a daemon restarted at any point repeats the
        create of the same attempt (ECI answers it with the same group) and never makes two."""
        uid, key = uid_of(pod), queue_key(pod)
        if identity.attempt_of(pod) < restart.attempt:
            now = utcnow()
            status = self.translator.restart_status(pod, restart.group_id, restart.attempt, restart.delay, now)
            self.writer.write(pod, status, annotations=restart_annotations(pod, restart.attempt))
            pod = self.cache.pod(key) or pod
            if uid_of(pod) != uid or identity.attempt_of(pod) < restart.attempt:
                return self.settings.delete_poll  # not written (a conflict, the pod going): look again
            policy = restart_policy(pod)
            wait = f" after a back-off of {restart.delay:g}s" if restart.delay else ""
            message = (
                f"{deleted_message(restart.group_id)}; creating it again{wait} "
                f"(attempt {restart.attempt}, restartPolicy {policy})"
            )
            self.recorder.emit(pod, "Warning", DELETED_REASON, message)
        wait_s = restart.not_before - self.clock()
        if wait_s > 0:
            return wait_s
        self._create(pod)
        if uid in self.groups:
            self.groups.restarted(uid)
        return None

    def _warn_once(self, pod: JSON, reason: str, message: str) -> None:
        """A Warning event, once per distinct message for this pod."""
        uid = uid_of(pod)
        if self.last_warning.get(uid) != message:
            self.recorder.emit(pod, "Warning", reason, message)
            self.last_warning[uid] = message

    def _report(self, pod: JSON, status: JSON, kind: str, reason: str, message: str) -> None:
        """Write a problem status and its Warning event once per distinct message."""
        uid = uid_of(pod)
        self.writer.write(pod, status)
        if self.last_warning.get(uid) != message:
            self.recorder.emit(pod, kind, reason, message)
            self.last_warning[uid] = message

    def _create(self, pod: JSON) -> float | None:
        """Create the pod's group (None), or hold the pod while ECI is unreachable (seconds to look again)."""
        uid, key = uid_of(pod), queue_key(pod)
        now = utcnow()
        try:
            request, warnings = self.translator.request(pod)
        except Rejected as err:
            message = str(err)
            # Once per distinct message: the status write wakes the pod's key again (issue 12 found two lines per pod).
            if self.last_warning.get(uid) != message:
                log.warning("pod rejected", extra=fields(pod=key, problems=message))
            status = self.translator.rejected_status(pod, err, now)
            self._report(pod, status, "Warning", "ProviderCreateFailed", message)
            return None
        except Missing as err:
            log.info("pod waits for referenced objects", extra=fields(pod=key, missing=str(err)))
            # As a kubelet: a missing env/envFrom source is "Failed", "Error: <its error>"; a volume one FailedMount.
            env = env_error(pod, err)
            reason, text = ("Failed", f"Error: {env}") if env else ("FailedMount", str(err))
            self._report(pod, self.translator.waiting_status(pod, err, now), "Warning", reason, text)
            raise  # retried with backoff until the objects exist
        outage = self.outage.message()
        if outage is not None:
            # Held, not retried with backoff: created as soon as the node sees ECI answer again (PodController).
            text = f"ECI is unreachable ({outage}); the container group will be created when ECI answers again"
            status = self.translator.problem_status(pod, ECI_UNREACHABLE_REASON, text, now)
            self._report(pod, status, "Warning", ECI_UNREACHABLE_REASON, text)
            return None if self.outage.hold(key) else 0.1  # back meanwhile: look again at once
        if warnings and self.last_warning.get(uid) is None:
            text = "; ".join(str(w) for w in warnings)
            self.recorder.emit(pod, "Warning", "TranslationWarning", text)
            self.last_warning[uid] = text
        # A create whose answer was lost may have succeeded: look before creating again. Only a retry looks,
        # and any create before the start-up listing is complete (the previous daemon may have created it):
        # the ClientToken (the pod UID) already makes ECI answer a repeated create with the same group, and
        # a listing per pod would cost a burst of N pods N DescribeContainerGroups calls (2,000/min budget).
        tried = self.groups.create_tried
        if uid in tried or not self.cache.synced.is_set():
            existing = self.eci.list_groups([*self.selector, {"Key": identity.TAG_UID, "Value": uid}])
            if existing:
                tried.discard(uid)
                self.adopt(uid, key, existing)
                return None
        tried.add(uid)
        try:
            group_id, request_id = self.eci.create(request)
        except EciError as err:
            if err.transient:
                raise
            log.warning("ECI refused the pod", extra=fields(pod=key, code=err.code, request_id=err.request_id))
            never = ((pod.get("spec") or {}).get("restartPolicy") or "Always") == "Never"
            status = self.translator.problem_status(pod, "ProviderFailed", str(err), now, fail=never)
            self._report(pod, status, "Warning", "ProviderCreateFailed", str(err))
            raise
        tried.discard(uid)
        waited = self.cache.seen_for(uid)
        if waited is not None:
            self.metrics.create_latency.observe(waited)
        record = GroupRecord(
            uid=uid,
            key=key,
            group_id=group_id,
            seen_at=self.clock(),
            request_id=request_id,
            attempt=identity.attempt_of(pod),
            token=str(request.get("ClientToken") or ""),
        )
        self.groups.remember(record)
        # No event of our own here: ECI's Pulling/Pulled/Created/Started follow, and events are
        # most of the Kubernetes writes per pod.
        log.info("group created", extra=fields(pod=key, group=group_id, request_id=request_id))
        self.status.wake()
        return None

    def adopt(self, uid: str, key: str, groups: list[JSON]) -> None:
        """Take over existing groups of a pod (of any attempt: the UID tag says whose they are); more
        than one means duplicates: keep the oldest of the newest attempt."""

        def order(group: JSON) -> tuple[int, str, str]:
            attempt = identity.attempt_from_tags(group.get("Tags") or [])
            return (-attempt, str(group.get("CreationTime") or ""), str(group.get("ContainerGroupId") or ""))

        groups = sorted(groups, key=order)
        keep = groups[0]
        attempt = identity.attempt_from_tags(keep.get("Tags") or [])
        pod = self.cache.pod(key)
        token = identity.client_token(pod, attempt) if pod is not None and uid_of(pod) == uid else ""
        record = GroupRecord(
            uid=uid, key=key, group_id=str(keep["ContainerGroupId"]), seen_at=self.clock(), attempt=attempt, token=token
        )
        self.groups.restarted(uid)
        if pod is not None and uid_of(pod) == uid and keep.get("Events"):
            self.recorder.seen(record, pod, keep, utcnow())
        self.groups.remember(record)
        log.info("group adopted", extra=fields(pod=key, group=record.group_id))
        for extra in groups[1:]:
            log.warning("duplicate group deleted", extra=fields(pod=key, group=extra.get("ContainerGroupId")))
            self.eci.delete(str(extra["ContainerGroupId"]))
        if keep.get("Status"):
            # The listing is a full description: apply it now instead of describing every group again.
            self.status.apply_group(keep)
        else:
            self.status.wake()

    def delete_group(self, uid: str) -> bool:
        """Delete the pod's group and confirm it is gone; True once it is."""
        record = self.groups.get(uid)
        if record is None:
            return True
        self.eci.delete(record.group_id)
        left = [g for g in self.eci.describe([record.group_id], with_event=False) if _alive(g)]
        if left:
            return False
        log.info("group deleted", extra=fields(pod=record.key, group=record.group_id))
        self.groups.forget(uid)
        return True

    def _finish_deletion(self, pod: JSON) -> float | None:
        """deletionTimestamp set: delete the group, confirm, then remove the pod (grace 0, UID precondition)."""
        uid, key = uid_of(pod), queue_key(pod)
        if uid not in self.groups and not self.cache.synced.is_set():
            return self.settings.delete_poll
        if not self.delete_group(uid):
            return self.settings.delete_poll  # ECI still terminating it (honouring its grace period)
        if uid in self.groups.removed_uids:
            return None  # already removed; the watch has not caught up yet
        meta = pod.get("metadata") or {}
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.kube.delete(pod_path(meta.get("namespace") or "default", str(meta.get("name"))), body)
        except KubeError as err:
            if not (err.not_found or err.conflict):
                raise
        log.info("pod deleted", extra=fields(pod=key))
        self.groups.mark_removed(uid)
        self.groups.drop_restarts(uid)
        self.groups.lost_uids.discard(uid)
        self.last_warning.pop(uid, None)
        return None

    def _annotate(self, pod: JSON, record: GroupRecord) -> None:
        meta = pod.get("metadata") or {}
        wanted = missing_annotations(pod, record.annotations())
        if wanted:
            patch = {"metadata": {"uid": record.uid, "annotations": wanted}}
            try:
                self.kube.patch(pod_path(meta.get("namespace") or "default", str(meta.get("name"))), patch)
            except KubeError as err:
                if not (err.not_found or err.conflict):
                    raise
        record.annotated = True


def _error_class(exc: Exception) -> str:
    """The ``error`` label of ``vkeci_workqueue_retries_total``."""
    if isinstance(exc, EciError):
        return "eci"
    if isinstance(exc, KubeError):
        return "kubernetes"
    if isinstance(exc, Missing):
        return "missing_reference"
    return "translation" if isinstance(exc, TranslationError) else "other"


def _alive(group: JSON) -> bool:
    """A described group still counts until ECI stops returning it."""
    return bool(group.get("ContainerGroupId"))
