"""The client command's variables (``STORAGE_PROXY_URL``, ``STORAGE_PROXY_TOKEN``), exported in
the shell that then starts the daemon, are not taken for config keys."""

from __future__ import annotations

import pytest

from storage_proxy.config import load_config
from storage_proxy.core.errors import ConfigError


def test_client_variables_are_not_config_keys() -> None:
    env = {
        "STORAGE_PROXY_URL": "http://127.0.0.1:6021",
        "STORAGE_PROXY_TOKEN": "eyJ…",
        "STORAGE_PROXY_TEST_S3_ENDPOINT": "http://127.0.0.1:7480",
        "STORAGE_PROXY_STORAGE_PROXY__USER_TOKEN_MAX_EXPIRE": "2d",
    }
    cfg = load_config(None, env)
    assert cfg["storage-proxy"]["user-token-max-expire"].days == 2


def test_other_unknown_variables_still_fail() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        load_config(None, {"STORAGE_PROXY_NONSENSE": "1"})
