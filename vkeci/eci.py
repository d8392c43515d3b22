"""The ECI client: a thin layer over the official SDK (`alibabacloud-eci20180808`).

Signing, wire format and credentials are the SDK's and `alibabacloud-credentials`' job;
this module only builds the client from a Config.
"""

from __future__ import annotations

from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.models import Config as CredentialConfig
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import models as open_api_models

from vkeci import urlescape
from vkeci.config import Config


def credential_client(config: Config) -> CredentialClient:
    """Credentials from the configuration if given, else the standard Alibaba Cloud chain
    (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, STS token, ALIBABA_CLOUD_ROLE_ARN, ECS RAM role...)."""
    if config.access_key_id and config.access_key_secret:
        if config.security_token:
            return CredentialClient(
                CredentialConfig(
                    type="sts",
                    access_key_id=config.access_key_id.reveal(),
                    access_key_secret=config.access_key_secret.reveal(),
                    security_token=config.security_token.reveal(),
                )
            )
        return CredentialClient(
            CredentialConfig(
                type="access_key",
                access_key_id=config.access_key_id.reveal(),
                access_key_secret=config.access_key_secret.reveal(),
            )
        )
    return CredentialClient()


def new_client(
    config: Config,
    *,
    signature_algorithm: str | None = None,
    connect_timeout_ms: int = 5000,
    read_timeout_ms: int = 10000,
) -> Client:
    """An SDK client for the configured endpoint. The SDK itself never retries; callers do."""
    urlescape.install()  # the SDK's long, already-escaped URLs skip urllib3's byte-by-byte re-check
    sdk_config = open_api_models.Config(
        credential=credential_client(config),
        region_id=config.region or None,
        endpoint=config.endpoint(),
        protocol=config.eci_protocol,
        connect_timeout=connect_timeout_ms,
        read_timeout=read_timeout_ms,
        user_agent="vkeci",
    )
    if signature_algorithm:
        sdk_config.signature_algorithm = signature_algorithm
    return Client(sdk_config)
