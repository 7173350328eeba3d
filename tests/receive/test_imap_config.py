"""[[imap]] tables in the config: validated, named `imap[N].key` (N counts from 1) and the
file in every error, secrets only from files, relative paths relative to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.receive.imap.folders import FolderNaming
from intake.service.config import load_config
from storage.errors import SettingsError

MAILBOX = 'name = "{name}"\nhost = "imap.example.dk"\nusername = "u@example.dk"\n'


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "imap-password").write_text("secret\n", encoding="utf-8")
    (tmp_path / "client-secret").write_text("s\n", encoding="utf-8")
    (tmp_path / "refresh-token").write_text("r\n", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def imap_table(name: str = "a", extra: str = 'password_file = "imap-password"\n') -> str:
    return "[[imap]]\n" + MAILBOX.format(name=name) + extra


def test_several_mailboxes_load_with_defaults_and_paths_relative_to_the_file(
        tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "ca.pem").write_text("-", encoding="utf-8")
    text = (imap_table("a") + 'ca_file = "ca.pem"\n'
            + imap_table("b", 'auth = "xoauth2"\n'
                         'oauth_token_endpoint = "https://login.example/token"\n'
                         'oauth_client_id = "id"\n'
                         'oauth_client_secret_file = "../client-secret"\n'
                         'oauth_refresh_token_file = "../refresh-token"\n'
                         'mode = "poll"\npoll_seconds = 30\n'))
    path = tmp_path / "etc" / "config.toml"
    path.write_text(text.replace('"imap-password"', '"../imap-password"'), encoding="utf-8")
    write(tmp_path, "")  # the secret files
    first, second = load_config(path).imap
    assert (first.name, first.port, first.security, first.folder, first.processed_folder,
            first.mode, first.timeout_seconds) == (
        "a", 993, "ssl", "INBOX", "Chikanemail/Behandlet", "idle", 60.0)
    assert first.password_file == str(tmp_path / "imap-password")
    assert first.ca_file == str(tmp_path / "etc" / "ca.pem")
    assert second.oauth_client_secret_file == str(tmp_path / "client-secret")
    assert second.oauth_refresh_token_file == str(tmp_path / "refresh-token")
    assert (second.mode, second.poll_seconds) == ("poll", 30.0)


def test_client_credentials_needs_secret_and_scope_but_no_refresh_token(tmp_path: Path) -> None:
    text = imap_table("m365", 'auth = "xoauth2"\n'
                      'oauth_token_endpoint = "https://login.example/token"\n'
                      'oauth_client_id = "id"\noauth_client_secret_file = "client-secret"\n'
                      'oauth_scope = "https://outlook.office365.com/.default"\n')
    (mailbox,) = load_config(write(tmp_path, text)).imap
    assert mailbox.oauth_refresh_token_file == ""


XOAUTH = ('auth = "xoauth2"\noauth_token_endpoint = "https://login.example/token"\n'
          'oauth_client_id = "id"\noauth_refresh_token_file = "refresh-token"\n')


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[imap]\nname = "a"\n', "imap", "array of tables"),
        ("imap = [1]\n", "imap", "array of tables"),
        (imap_table("a") + imap_table("b") + "port = 70000\n", "imap[2].port",
         "between 1 and 65535"),
        (imap_table("a") + 'port = "993"\n', "imap[1].port", "valid integer"),
        (imap_table("a") + 'prot = 993\n', "imap[1].prot", "unknown key"),
        ('[[imap]]\nname = "a"\nusername = "u"\npassword_file = "imap-password"\n',
         "imap[1].host", "Field required"),
        (imap_table("a") + imap_table("a"), "imap[2].name", "already the name"),
        (imap_table("a b"), "imap[1].name", "not a mailbox name"),
        (imap_table("a", ""), "imap[1].password_file", "needed"),
        (imap_table("a", 'password_file = "missing"\n'), "imap[1].password_file",
         "does not exist"),
        (imap_table("a", 'password = "secret"\n'), "imap[1].password", "unknown key"),
        (imap_table("a") + 'security = "none"\n', "imap[1].security", "'ssl' or 'starttls'"),
        (imap_table("a") + 'mode = "push"\n', "imap[1].mode", "'idle' or 'poll'"),
        (imap_table("a") + "poll_seconds = 0\n", "imap[1].poll_seconds", "greater than 0"),
        (imap_table("a") + "timeout_seconds = -1\n", "imap[1].timeout_seconds",
         "greater than 0"),
        (imap_table("a") + 'processed_folder = "INBOX"\n', "imap[1].processed_folder",
         "must differ"),
        (imap_table("a") + 'folder = ""\n', "imap[1].folder", "must not be empty"),
        (imap_table("a") + 'ca_file = "nope.pem"\n', "imap[1].ca_file", "does not exist"),
        (imap_table("a") + 'oauth_client_id = "id"\n', "imap[1].oauth_client_id",
         "only used with"),
        (imap_table("a", XOAUTH.replace("https://login.example/token", "")),
         "imap[1].oauth_token_endpoint", "needed"),
        (imap_table("a", XOAUTH.replace("https://", "http://")),
         "imap[1].oauth_token_endpoint", "https://"),
        (imap_table("a", XOAUTH.replace('oauth_client_id = "id"\n', "")),
         "imap[1].oauth_client_id", "needed"),
        (imap_table("a", XOAUTH.replace("refresh-token", "missing-token")),
         "imap[1].oauth_refresh_token_file", "does not exist"),
        (imap_table("a", XOAUTH.replace('oauth_refresh_token_file = "refresh-token"\n', "")),
         "imap[1].oauth_client_secret_file", "client-credentials"),
        (imap_table("a", XOAUTH + 'password_file = "imap-password"\n'),
         "imap[1].password_file", "not used with"),
    ],
)
def test_mistakes_name_the_table_the_key_and_the_file(tmp_path: Path, text: str, key: str,
                                                      problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert f": {key}:" in message
    assert problem in message


def test_http_token_endpoint_allowed_on_this_machine_only(tmp_path: Path) -> None:
    text = imap_table("a", XOAUTH.replace("https://login.example", "http://127.0.0.1:8080"))
    assert load_config(write(tmp_path, text)).imap[0].oauth_token_endpoint.startswith("http:")


@pytest.mark.parametrize(
    ("prefix", "delimiter", "configured", "on_server"),
    [
        ("", ".", "Chikanemail/Behandlet", "Chikanemail.Behandlet"),
        ("", "/", "Chikanemail/Behandlet", "Chikanemail/Behandlet"),
        ("INBOX.", ".", "Chikanemail/Behandlet", "INBOX.Chikanemail.Behandlet"),
        ("INBOX.", ".", "INBOX.Done", "INBOX.Done"),
        ("INBOX.", ".", "inbox", "INBOX"),
        ("", "", "Behandlet", "Behandlet"),
    ],
)
def test_folder_names_follow_the_server(prefix: str, delimiter: str, configured: str,
                                        on_server: str) -> None:
    assert FolderNaming(prefix, delimiter).server_name(configured) == on_server
