"""`hyperalign deploy`: the files it writes, their modes, what it refuses, and nginx's own check of the
site. (tests/e2e/test_replicas_browser.py runs the recipe: two replicas, a worker and nginx.)"""

from __future__ import annotations

import stat
import subprocess

import pytest

from assistant.deploy import Plan, nginx_site, render
from assistant.measure.proxy import NGINX
from tests.conftest import unavailable
from tests.deployment import settings_file, unit_command
from tests.inprocess import hyperalign as run


def test_deploy_writes_the_recipe_and_keeps_the_secret_owner_only(tmp_path):
    out = tmp_path / "deploy"
    done = run("deploy", "--out", str(out), "--replicas", "3", "--first-port", "9001", "--listen", "8080",
               "--server-name", "chat.example.org", "--import-limit-mb", "2048")
    assert done.returncode == 0, done.stderr
    site = (out / "nginx/hyperalign.conf").read_text()
    # The import upload may be as large as the app's limit, and both say the same.
    imports = site.split("location = /api/me/imports {", 1)[1].split("}", 1)[0]
    assert "client_max_body_size 2048m;" in imports and "proxy_request_buffering off;" in imports
    assert all(f"server 127.0.0.1:{port} " in site for port in (9001, 9002, 9003)) and "9004" not in site
    assert "listen 8080;" in site and "server_name chat.example.org;" in site
    settings = out / "hyperalign.env"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    shared = settings_file(settings.read_text())
    assert len(shared["CHAINLIT_AUTH_SECRET"]) >= 64 and shared["HYPERALIGN_WEB_RUNS_JOBS"] == "false"
    assert shared["HYPERALIGN_IMPORT_LIMIT_MB"] == "2048"
    command, env = unit_command((out / "systemd/hyperalign@.service").read_text(), "9002")
    assert command[1:] == ["serve", "--host", "127.0.0.1", "--port", "9002"] and env == {"HYPERALIGN_INSTANCE": "9002"}
    assert "systemctl enable --now hyperalign@9001 hyperalign@9002 hyperalign@9003 hyperalign-worker" in done.stdout

    again = run("deploy", "--out", str(out))  # never overwrites: the settings file holds a live secret
    assert again.returncode == 2 and "already holds" in again.stderr
    assert settings_file(settings.read_text())["CHAINLIT_AUTH_SECRET"] == shared["CHAINLIT_AUTH_SECRET"]


def test_two_recipes_never_share_a_secret(tmp_path):
    first, second = (settings_file(render(Plan())["hyperalign.env"])["CHAINLIT_AUTH_SECRET"] for _ in range(2))
    assert first != second


@pytest.mark.parametrize("flags, problem", [
    (["--replicas", "0"], "--replicas"),
    (["--import-limit-mb", "0"], "--import-limit-mb"),
    (["--first-port", "80"], "--first-port"),
    (["--listen", "8001"], "--listen must differ"),
    (["--server-name", "evil; include /etc/passwd"], "--server-name"),
    (["--checkout", "relative/path"], "--checkout"),
    (["--data-dir", "/var/lib/x y"], "--data-dir"),
    (["--user", "a$b"], "--user"),
    (["--server-name", "#"], "--server-name"),  # nginx would read the rest of the line as a comment
    (["--user", "%n"], "--user"),  # systemd would expand it
    (["--certificate", "/etc/ssl/site.pem"], "--certificate and --key go together"),
    (["--certificate", "/etc/ssl/a b.pem", "--key", "/k.pem"], "--certificate"),
])
def test_deploy_refuses_what_would_make_a_broken_or_injected_config(tmp_path, flags, problem):
    done = run("deploy", "--out", str(tmp_path / "out"), *flags)
    assert done.returncode == 2 and problem in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_nginx_accepts_the_site_it_is_given(tmp_path, tls):
    if not NGINX.exists():
        unavailable(f"{NGINX} not found (apt-get install nginx)")
    certificate = {}
    if tls:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=chat.test",
                        "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                       check=True, capture_output=True)
        certificate = {"certificate": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")}
    site = tmp_path / "site.conf"
    text = nginx_site(Plan(replicas=2, first_port=28001, listen=28080, **certificate))
    assert ("listen 28080 ssl;" in text) == tls and "listen [::]:28080" in text
    assert text.count("proxy_read_timeout 1h;") == 1  # only the socket may idle for an hour
    site.write_text(text)
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path / 'pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
                    f"http {{ access_log off; include {site}; }}\n")
    check = subprocess.run([str(NGINX), "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
