"""The test run is hermetic (issue 12): it runs in a private network namespace made by ``e2e.netns``,
with only ``lo`` (127.0.0.1 and the node address 10.250.0.1) and no route out, and the Alibaba Cloud
credential chain never asks the ECS metadata service (100.100.100.200).

tests/conftest.py refuses to start a run outside the namespace; these tests say what exactly holds.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e import netns


def test_the_run_is_inside_its_own_network_namespace() -> None:
    assert netns.problems() == [], netns.HOW_TO_RUN
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.mark.parametrize("address", ["1.1.1.1", "100.100.100.200", "192.168.0.1", "10.0.0.1"])
def test_nothing_outside_the_namespace_is_reachable(address: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        with pytest.raises(OSError) as info:
            sock.connect((address, 80))
    assert info.value.errno == errno.ENETUNREACH


def test_the_node_address_is_local_and_the_harness_gives_it_to_the_daemons() -> None:
    assert netns.NODE_IP == "10.250.0.1"
    assert netns.node_ip() == netns.NODE_IP
    with socket.create_server((netns.NODE_IP, 0)) as server:
        with socket.create_connection(server.getsockname()[:2], timeout=2):
            pass


def test_the_credential_chain_never_asks_the_metadata_service(tmp_path: Path) -> None:
    """Without keys the client's credentials fail at once, naming the providers it tried; the ECS RAM-role
    provider (100.100.100.200) is not among them. A fresh interpreter, because the chain reads the
    setting when it is imported, with an empty HOME so no developer's ~/.aliyun profile is found."""
    from alibabacloud_credentials.utils import auth_util

    assert auth_util.environment_ecs_metadata_disabled == "true"  # as this very process imported it
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_") and not k.startswith("ECI_")}
    env.update({**netns.METADATA_DISABLED, "HOME": str(tmp_path)})
    code = (
        "from vkeci.config import Config\n"
        "from vkeci.clients.eci import credential_client\n"
        "credential_client(Config(region='cn-hangzhou')).get_credential()\n"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.stdout
    assert "unable to load credentials from any of the providers in the chain" in result.stderr, result.stderr
    assert "EnvironmentVariableCredentialsProvider" in result.stderr
    assert "EcsRamRole" not in result.stderr
    # It took 12.2 s once at load 17 (a slow import, not a network wait): the bound catches a timeout.
    assert elapsed < 20, f"{elapsed:.1f}s to fail: something waited on the network"
