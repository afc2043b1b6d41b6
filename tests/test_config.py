"""Settings: defaults < TOML file < environment < command line; bad input names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, Settings, describe, load_settings, redact_url


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "livecart.toml"
    path.write_text(text)
    return path


def test_defaults_run_embedded() -> None:
    settings, sources = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.redis_url is None and settings.stripe_secret_key is None
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("livecart-data/livecart.db")
    assert settings.effective_public_url == "http://127.0.0.1:8080"
    assert set(sources.values()) == {"default"}


def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'port = 9000\nhost = "0.0.0.0"\nice_servers = ["stun:stun.example:3478"]\n')
    settings, sources = load_settings(path, environ={})
    assert (settings.port, settings.host, settings.ice_servers) == (
        9000,
        "0.0.0.0",
        ("stun:stun.example:3478",),
    )
    assert settings.effective_public_url == "http://127.0.0.1:9000"
    settings, sources = load_settings(path, environ={"LIVECART_PORT": "9100", "LIVECART_ICE_SERVERS": ""})
    assert settings.port == 9100 and settings.ice_servers == () and sources["port"] == "env"
    settings, sources = load_settings(path, environ={"LIVECART_PORT": "9100"}, overrides={"port": "9200"})
    assert settings.port == 9200 and sources["port"] == "command line"
    assert sources["host"] == "file"


def test_every_setting_named_in_the_api_contract_is_accepted() -> None:
    env = {
        "LIVECART_DATA_DIR": "/tmp/lc",
        "LIVECART_ADMIN_TOKEN": "secret-admin-" + "x" * 20,
        "LIVECART_DATABASE_URL": "postgresql://u:pw@db.example/livecart",
        "LIVECART_REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
        "LIVECART_PUBLIC_URL": "https://live.example/",
        "LIVECART_STRIPE_SECRET_KEY": "sk_test_1",
        "LIVECART_STRIPE_PUBLISHABLE_KEY": "pk_test_1",
        "LIVECART_STRIPE_WEBHOOK_SECRET": "whsec_1",
        "LIVECART_STRIPE_API_BASE": "http://127.0.0.1:8420",
        "LIVECART_ICE_SERVERS": "stun:a.example:3478, turn:b.example:3478",
        "LIVECART_ICE_ADDRESSES": "127.0.0.1",
        "LIVECART_RESERVATION_TTL_S": "90",
    }
    settings, _ = load_settings(None, environ=env)
    assert settings.data_dir == Path("/tmp/lc")
    assert settings.public_url == "https://live.example"
    assert settings.ice_servers == ("stun:a.example:3478", "turn:b.example:3478")
    assert settings.ice_addresses == ("127.0.0.1",)
    assert settings.reservation_ttl_s == 90.0
    text = describe(settings, {})
    for secret in ("secret-admin", "sk_test_1", "whsec_1", ":pw@"):
        assert secret not in text
    assert "pk_test_1" in text  # publishable keys are public by design
    assert 'admin_token = "****"' in text
    assert "postgresql://u:****@db.example/livecart" in text


def test_turn_credentials_are_masked_and_short_admin_tokens_refused() -> None:
    env = {"LIVECART_ICE_SERVERS": "stun:a.example:3478, turn:alice:s3cret@b.example:3478"}
    settings, sources = load_settings(None, environ=env)
    text = describe(settings, sources)
    assert "s3cret" not in text and '"turn:alice:****@b.example:3478"' in text
    assert '"stun:a.example:3478"' in text
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ={"LIVECART_ADMIN_TOKEN": "a"})
    assert refused.value.setting == "LIVECART_ADMIN_TOKEN" and "32 characters" in refused.value.message
    settings, _ = load_settings(None, environ={"LIVECART_ADMIN_TOKEN": "x" * 32})
    assert settings.admin_token == "x" * 32


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LIVECART_PORT": "eighty"}, "LIVECART_PORT"),
        ({"LIVECART_PORT": "70000"}, "LIVECART_PORT"),
        ({"LIVECART_WORKERS": "0"}, "LIVECART_WORKERS"),
        ({"LIVECART_RESERVATION_TTL_S": "-1"}, "LIVECART_RESERVATION_TTL_S"),
        ({"LIVECART_RESERVATION_TTL_S": "nan"}, "LIVECART_RESERVATION_TTL_S"),
        ({"LIVECART_DATABASE_URL": "mysql://x/y"}, "LIVECART_DATABASE_URL"),
        ({"LIVECART_REDIS_URL": "127.0.0.1:6379"}, "LIVECART_REDIS_URL"),
        ({"LIVECART_PUBLIC_URL": "live.example"}, "LIVECART_PUBLIC_URL"),
        ({"LIVECART_ICE_SERVERS": "http://stun.example"}, "LIVECART_ICE_SERVERS"),
        ({"LIVECART_ICE_ADDRESSES": "localhost"}, "LIVECART_ICE_ADDRESSES"),
        ({"LIVECART_LOG_LEVEL": "loud"}, "LIVECART_LOG_LEVEL"),
        ({"LIVECART_CORS_ORIGINS": "shop.example"}, "LIVECART_CORS_ORIGINS"),
        ({"LIVECART_REDIS_ULR": "redis://x"}, "LIVECART_REDIS_ULR"),
    ],
)
def test_bad_environment_names_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ=env)
    assert caught.value.setting == named
    assert str(caught.value).startswith(named + ": ")


def test_bad_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"prot: unknown setting"):
        load_settings(_toml(tmp_path, "prot = 1\n"), environ={})
    with pytest.raises(ConfigError, match=r"port: must be an integer"):
        load_settings(_toml(tmp_path, 'port = "x"\n'), environ={})
    with pytest.raises(ConfigError, match=r"port: must be an integer"):
        load_settings(_toml(tmp_path, "port = 80.5\n"), environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_toml(tmp_path, "port = \n"), environ={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_several_workers_need_redis() -> None:
    with pytest.raises(ConfigError, match="LIVECART_REDIS_URL") as caught:
        load_settings(None, environ={}, overrides={"workers": "2"})
    assert caught.value.setting == "--workers"
    settings, _ = load_settings(
        None, environ={"LIVECART_REDIS_URL": "redis://127.0.0.1:6379/0"}, overrides={"workers": "2"}
    )
    assert settings.workers == 2


def test_livecart_table_is_accepted(tmp_path: Path) -> None:
    settings, _ = load_settings(_toml(tmp_path, "[livecart]\nport = 8181\n"), environ={})
    assert settings.port == 8181


def test_test_suite_variables_are_not_settings() -> None:
    settings, _ = load_settings(None, environ={"LIVECART_TEST_DATABASE_URL": "x", "LIVECART_CONFIG": "y"})
    assert settings == Settings()


def test_redact_url() -> None:
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:****@h:6379/0"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
