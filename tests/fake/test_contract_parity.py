"""The fake's model of ECI and the client's agree: sizes, limits, names. Neither imports the other.

``fakes/eci`` models the cloud independently on purpose (it must not echo the client's bugs back),
so the two are two implementations of one contract. This test is what makes drift between them fail
loudly instead of hiding: a change to either side must be made to both, deliberately.
"""

from __future__ import annotations

import ast
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException
from conftest import REGION, sdk_client

from fakes.eci import spec as fake
from fakes.eci.errors import ApiError
from vkeci.clients import eci as client
from vkeci.core import containers, identity, sizes, status, volumes

FAKES = Path(fake.__file__).resolve().parent


def test_the_fake_imports_nothing_from_the_product():
    for path in sorted(FAKES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "vkeci" or n.startswith("vkeci.") for n in names), f"{path.name} imports {names}"


def test_the_size_tables_are_the_same():
    assert fake.SPECS == sizes.SUPPORTED


CPUS = [Decimal(x) for x in ("0.1", "0.25", "0.3", "1", "1.5", "2", "3", "7", "12", "20", "50", "64")]
MEMS = [Decimal(x) for x in ("0.2", "0.5", "1", "3", "4", "10", "33", "100", "300", "512")]


@pytest.mark.parametrize(("cpu", "memory"), list(itertools.product(CPUS, MEMS)))
def test_both_round_a_request_up_to_the_same_size(cpu, memory):
    try:
        ours = sizes.round_up(cpu, memory)
    except sizes.SizeError:
        with pytest.raises(ApiError):
            fake.round_up_spec(float(cpu), float(memory))
        return
    assert fake.round_up_spec(float(cpu), float(memory)) == (float(ours[0]), float(ours[1]))


def test_the_fake_shows_each_state_as_the_phase_the_status_table_maps_it_to():
    from fakes.eci import render

    assert {state: status.PHASES[state] for state in render._PHASE} == render._PHASE


def test_the_limits_are_the_same():
    assert fake.MAX_CONTAINERS == containers.MAX_CONTAINERS
    assert fake.MAX_ARGS == containers.MAX_ARGS
    assert fake.MAX_VOLUMES == volumes.MAX_VOLUMES
    assert fake.MAX_TAGS == identity.MAX_TAGS
    assert (fake.MAX_CONFIG_FILE_BYTES, fake.MAX_CONFIG_VOLUME_BYTES) == (
        volumes.MAX_FILE_BYTES,
        volumes.MAX_VOLUME_BYTES,
    )
    assert fake.NAME_RE.pattern == identity.GROUP_NAME_PATTERN.pattern


def test_the_client_batches_ids_as_the_fake_accepts_them(fake):
    # DescribeContainerGroups takes at most 20 ids; the client sends batches of that size.
    sdk = sdk_client(fake)
    ids = [f"eci-{i}" for i in range(client._MAX_IDS + 1)]

    def describe(batch: list[str]) -> object:
        request = m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=json.dumps(batch))
        return sdk.describe_container_groups(request)

    describe(ids[: client._MAX_IDS])
    with pytest.raises(ClientException):
        describe(ids)
    assert max(len(part) for part in client.chunks(ids)) == client._MAX_IDS
