"""The files of a several-process install: replicas of the web app and a worker on one PostgreSQL, behind
nginx. Pure: a `Plan` in, file names and contents out; `hyperalign deploy` writes them.

Why the proxy config looks as it does (Chainlit 2.x, nginx 1.22 from Debian, both measured):
- Chainlit keeps a chat's socket state in the process that accepted it, and socket.io may start on
  HTTP long-polling before it upgrades, so every request of one browser must reach one replica.
  Open-source nginx has no `sticky cookie`, so the proxy sets a random route cookie on a browser's
  first request and hashes on it (consistent hashing: adding a replica moves few browsers).
- A replica that is down is skipped for the request that found it down (`proxy_next_upstream`) and for
  the next `fail_timeout`; its browsers reconnect to another replica, which resumes their stored chats.
  One that hangs is given up on after 60 s (open-source nginx has no active health checks).
- The socket is a WebSocket: only a `websocket` upgrade is passed on, and an idle socket is kept for an
  hour; every other request has the 60 s limit.
- TLS ends at this nginx. The app sees the browser's address (per-client sign-in limits) from
  X-Forwarded-For and the scheme from X-Forwarded-Proto, which uvicorn believes only from 127.0.0.1;
  the proxy replaces whatever a client sent there. Behind another TLS proxy both would describe that
  proxy: the browser's `Origin: https://…` would not match the app's idea of its own origin, and every
  person would share the proxy's sign-in limit. So a certificate is given here, or the site is plain HTTP.
- The Host header is passed through unchanged: the app compares a request's Origin with it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath

ROUTE_COOKIE = "hyperalign_route"
# What may go into the files: nothing that nginx (`;`, `#`, braces, quotes, `$`) or systemd (`%`, spaces)
# would read as more than a value.
_NAME = re.compile(r"_|(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*")
_ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")
_PATH = re.compile(r"[A-Za-z0-9/._-]+")


@dataclass(frozen=True)
class Plan:
    replicas: int = 2
    first_port: int = 8001
    listen: int = 80
    server_name: str = "_"
    checkout: str = "/srv/hyperalign"  # the source checkout, with its .venv
    user: str = "hyperalign"  # the system account the processes run as
    config_dir: str = "/etc/hyperalign"
    data_dir: str = "/var/lib/hyperalign"
    upload_limit_mb: int = 10
    import_limit_mb: int = 1024  # a person's history, uploaded from the profile panel (HYPERALIGN_IMPORT_LIMIT_MB)
    certificate: str | None = None  # TLS ends here when both are given (PEM files nginx can read)
    key: str | None = None
    ipv6: bool = True  # listen on [::] too (off for a host without IPv6, where nginx would not start)

    def problems(self) -> list[str]:
        found = []
        if not 1 <= self.replicas <= 64:
            found.append("--replicas must be between 1 and 64")
        if not 1024 <= self.first_port <= 65535 - self.replicas:
            found.append("--first-port must leave room for every replica between 1024 and 65535")
        if not 1 <= self.import_limit_mb <= 65536:
            found.append("--import-limit-mb must be between 1 and 65536")
        if not 1 <= self.listen <= 65535:
            found.append("--listen must be a port")
        if self.first_port <= self.listen < self.first_port + self.replicas:
            found.append("--listen must differ from the replicas' ports")
        if not _NAME.fullmatch(self.server_name):
            found.append("--server-name must be one host name (letters, digits, '.', '-', a leading '*.'), or _")
        if not _ACCOUNT.fullmatch(self.user):
            found.append("--user must be a system account name (letters, digits, '.', '_', '-')")
        paths = [("--checkout", self.checkout), ("--config-dir", self.config_dir), ("--data-dir", self.data_dir),
                 ("--certificate", self.certificate), ("--key", self.key)]
        for name, value in paths:
            if value is not None and not (PurePosixPath(value).is_absolute() and _PATH.fullmatch(value)):
                found.append(f"{name} must be an absolute path of letters, digits, '/', '.', '_' and '-'")
        if (self.certificate is None) != (self.key is None):
            found.append("--certificate and --key go together")
        return found

    @property
    def tls(self) -> bool:
        return self.certificate is not None

    @property
    def ports(self) -> list[int]:
        return list(range(self.first_port, self.first_port + self.replicas))


def nginx_site(plan: Plan) -> str:
    """A site for /etc/nginx/sites-available (inside nginx's http block)."""
    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;" for port in plan.ports)
    ssl = " ssl" if plan.tls else ""
    ipv6 = f"\n    listen [::]:{plan.listen}{ssl};" if plan.ipv6 else ""
    certificate = (f"\n    ssl_certificate {plan.certificate};\n    ssl_certificate_key {plan.key};\n"
                   "    ssl_protocols TLSv1.2 TLSv1.3;\n" if plan.tls else "")
    proxied = """        proxy_pass http://hyperalign;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $hyperalign_upgrade;
        proxy_set_header Connection $hyperalign_connection;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 5s;
        proxy_buffering off;
        add_header Set-Cookie $hyperalign_route_cookie always;"""
    return f"""# hyperalign: {plan.replicas} replicas behind one address. Written by `hyperalign deploy`.
# Each browser keeps one replica (Chainlit holds a chat's socket in one process): a random route cookie,
# set on its first request, picks the replica; one that is down is skipped and its browsers move on.
# TLS ends here: behind another TLS proxy the app would take that proxy for every browser.

upstream hyperalign {{
    hash $hyperalign_route consistent;
{servers}
    keepalive 32;
}}

# A well-formed route cookie is kept; anything else (none, or forged junk) gets a fresh random route.
map $cookie_{ROUTE_COOKIE} $hyperalign_route {{
    "~^[0-9A-Za-z]{{16,64}}$" $cookie_{ROUTE_COOKIE};
    default $request_id;
}}
map $https $hyperalign_cookie_secure {{
    on "; Secure";
    default "";
}}
map $cookie_{ROUTE_COOKIE} $hyperalign_route_cookie {{
    "~^[0-9A-Za-z]{{16,64}}$" "";
    default "{ROUTE_COOKIE}=$request_id; Path=/; HttpOnly; SameSite=Lax$hyperalign_cookie_secure";
}}
# Only the socket's upgrade is passed on; otherwise an empty Connection header, so upstream connections
# are reused.
map $http_upgrade $hyperalign_upgrade {{
    "~*^websocket$" websocket;
    default "";
}}
map $hyperalign_upgrade $hyperalign_connection {{
    websocket upgrade;
    default "";
}}

server {{
    listen {plan.listen}{ssl};{ipv6}
    server_name {plan.server_name};
    client_max_body_size {plan.upload_limit_mb}m;
{certificate}
    # The chat's socket: idle for as long as a person reads.
    location /ws/ {{
{proxied}
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }}

    # A person's history, uploaded from the profile panel: as large as the import limit (the app checks
    # it again), and passed on as it arrives instead of spooled to a file here first.
    location = /api/me/imports {{
{proxied}
        client_max_body_size {plan.import_limit_mb}m;
        proxy_request_buffering off;
        proxy_read_timeout 60s;
        proxy_send_timeout 60s;
    }}

    # Everything else answers within a minute, or the replica is taken for hung and skipped.
    location / {{
{proxied}
        proxy_read_timeout 60s;
        proxy_send_timeout 60s;
    }}
}}
"""


def replica_unit(plan: Plan) -> str:
    """A systemd template: `hyperalign@PORT.service` serves one replica on 127.0.0.1:PORT."""
    return f"""# One hyperalign replica on 127.0.0.1:%i. Written by `hyperalign deploy`.
[Unit]
Description=hyperalign replica on port %i
Wants=network-online.target
After=network-online.target postgresql.service

[Service]
User={plan.user}
WorkingDirectory={plan.checkout}
EnvironmentFile={plan.config_dir}/hyperalign.env
Environment=HYPERALIGN_INSTANCE=%i
ExecStart={plan.checkout}/.venv/bin/hyperalign serve --host 127.0.0.1 --port %i
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def worker_unit(plan: Plan) -> str:
    return f"""# The hyperalign worker: hypothesis jobs and embedding catch-up. Written by `hyperalign deploy`.
[Unit]
Description=hyperalign worker
Wants=network-online.target
After=network-online.target postgresql.service

[Service]
User={plan.user}
WorkingDirectory={plan.checkout}
EnvironmentFile={plan.config_dir}/hyperalign.env
Environment=HYPERALIGN_INSTANCE=worker
ExecStart={plan.checkout}/.venv/bin/hyperalign worker
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def environment(plan: Plan, *, auth_secret: str) -> str:
    """The settings every process shares. The sign-in secret must be the same in all of them, or a
    browser signed in through one replica is signed out by the next."""
    return f"""# Settings shared by every hyperalign process (README lists them all). Owner-only: it holds secrets.
DATABASE_URL=postgresql://hyperalign:CHANGE-ME@127.0.0.1:5432/hyperalign
CHAINLIT_AUTH_SECRET={auth_secret}
HYPERALIGN_DATA_DIR={plan.data_dir}
# The worker runs the hypothesis jobs, so a reply never waits behind one.
HYPERALIGN_WEB_RUNS_JOBS=false
# The largest history a person may import, in MB (the nginx site allows the same).
HYPERALIGN_IMPORT_LIMIT_MB={plan.import_limit_mb}
# The model server (README, "Connecting a model"); without one the app runs in offline mode:
# OPENAI_BASE_URL=http://127.0.0.1:11434/v1
# OPENAI_API_KEY=
# HYPERALIGN_CHAT_MODEL=
"""


def install_steps(plan: Plan) -> str:
    units = " ".join(f"hyperalign@{port}" for port in plan.ports)
    ports = f"{plan.ports[0]}-{plan.ports[-1]}"
    scheme = "https" if plan.tls else "http"
    default_site = ("\n     rm -f /etc/nginx/sites-enabled/default   # Debian's own site also answers any name on port 80"
                    if plan.server_name == "_" else "")
    tls_note = ("TLS ends at this nginx, with the certificate given." if plan.tls else
                "Plain HTTP: for people outside this machine, run `hyperalign deploy` again with --certificate and "
                "--key\n   (TLS must end at this nginx, not at a proxy in front of it).")
    return f"""hyperalign: {plan.replicas} replicas on ports {ports}, a worker, nginx on {scheme} port {plan.listen}.

1. An account for the processes, and the settings (fill in DATABASE_URL and the model in hyperalign.env):
     useradd --system --home-dir {plan.data_dir} --shell /usr/sbin/nologin {plan.user}
     install -d -m 700 -o {plan.user} {plan.data_dir}
     install -d -m 750 -o root -g {plan.user} {plan.config_dir}
     install -m 640 -o root -g {plan.user} hyperalign.env {plan.config_dir}/hyperalign.env
2. Check them before anything starts (it reports pending migrations, the model server and its window):
     sudo -u {plan.user} sh -c 'set -a; . {plan.config_dir}/hyperalign.env; {plan.checkout}/.venv/bin/hyperalign doctor'
3. Processes (the first to start migrates the database; the others wait for it):
     cp systemd/hyperalign@.service systemd/hyperalign-worker.service /etc/systemd/system/
     systemctl daemon-reload
     systemctl enable --now {units} hyperalign-worker
4. The proxy. {tls_note}
     cp nginx/hyperalign.conf /etc/nginx/sites-available/hyperalign
     ln -s /etc/nginx/sites-available/hyperalign /etc/nginx/sites-enabled/hyperalign{default_site}
     nginx -t && systemctl reload nginx
"""


def render(plan: Plan, *, auth_secret: str | None = None) -> dict[str, str]:
    """Relative file name -> content."""
    return {
        "nginx/hyperalign.conf": nginx_site(plan),
        "systemd/hyperalign@.service": replica_unit(plan),
        "systemd/hyperalign-worker.service": worker_unit(plan),
        "hyperalign.env": environment(plan, auth_secret=auth_secret or secrets.token_urlsafe(48)),
        "INSTALL.txt": install_steps(plan),
    }
