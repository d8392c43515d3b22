"""The RBAC table (deploy_manifests.API_CALLS) against the daemon's code, without rendering anything.

The rendered ClusterRole and Roles are held to the same table in test_render.py; the e2e test
tests/e2e/test_deploy_identity.py runs the daemon with exactly that identity and compares what it
called (its own request counts) with the table.
"""

from __future__ import annotations

from e2e.manifests import API_CALLS, NOT_API_CALLS, grants, path_fragments
from vkeci.commands.check import PERMISSIONS

# `vkeci check` asks the API server (SelfSubjectAccessReview) for check.PERMISSIONS: where that list and the
# daemon's real calls differ, a deployed `vkeci check` says FAIL for a right the daemon never uses, or misses
# one it does. Both must stay empty.
CHECK_ASKS_UNUSED: set[tuple[str, ...]] = set()
CHECK_MISSES: set[tuple[str, ...]] = set()


def test_every_api_path_in_the_code_is_claimed_by_a_rule():
    claimed = {f for call in API_CALLS for f in call.fragments}
    found = path_fragments()
    unclaimed = {f: sorted(files) for f, files in found.items() if f not in claimed and f not in NOT_API_CALLS}
    assert not unclaimed, (
        f"the daemon's code builds Kubernetes API paths no RBAC rule accounts for: {unclaimed}. Add the call "
        "to API_CALLS (tests/deploy/deploy_manifests.py) and the rule to deploy/kustomize/base/rbac.yaml and "
        "the Helm chart, or list the string in NOT_API_CALLS if it is no API request"
    )


def test_every_rule_is_used_by_the_code():
    found = path_fragments()
    stale = [c for c in API_CALLS if not c.planned and any(f not in found for f in c.fragments)]
    assert not stale, f"rules whose request is no longer in the code (drop them from the table and the RBAC): {stale}"
    planned_in_code = [c for c in API_CALLS if c.planned and c.fragments]
    assert not planned_in_code, f"planned calls must not claim code yet: {planned_in_code}"


def test_the_not_api_list_has_no_stale_entries():
    found = path_fragments()
    assert sorted(NOT_API_CALLS - set(found)) == []


def test_vkeci_check_asks_for_what_the_daemon_uses():
    granted = set()
    for scope, group, resource, verb, names in grants(c for c in API_CALLS if c.mode == "base" and not c.planned):
        name, _, sub = resource.partition("/")
        granted.add((verb, group, name, sub, "" if scope == "*" else scope, ",".join(names)))
    asked = set(PERMISSIONS)
    assert asked - granted == CHECK_ASKS_UNUSED
    assert granted - asked == CHECK_MISSES
