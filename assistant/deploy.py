"""The files of a several-process install: replicas of the web app and a worker on one PostgreSQL, behind
nginx. Pure: a `Plan` in, file names and contents out; `hyperalign deploy` writes them.

Why the proxy config looks as it does (Chainlit 2.x, nginx 1.22 from Debian, both measured):
- Chainlit keeps a chat's socket state in the process that accepted it, and socket.io may start on
  HTTP long-polling before it upgrades, so every request of one browser must reach one replica.
  Open-source nginx has no `sticky cookie`, so the proxy sets a random route cookie on a browser's
  first request and hashes on it (consistent hashing: adding a replica moves few browsers).
- A replica that is down is skipped for the request that found it down (`proxy_next_upstream`) and for
  the next `fail_timeout`; its browsers reconnect to another replica, which resumes their stored chats.
- The socket is a WebSocket: the proxy passes the upgrade and keeps an idle socket for an hour.
- The app sees the browser's address (per-client sign-in limits) from X-Forwarded-For, which uvicorn
  believes only from 127.0.0.1; the proxy replaces whatever a client sent there. X-Forwarded-Proto
  tells it the page was served over TLS, so its cookies are marked Secure.
- The Host header is passed through unchanged: the app compares a request's Origin with it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath

ROUTE_COOKIE = "hyperalign_route"


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

    def problems(self) -> list[str]:
        found = []
        if not 1 <= self.replicas <= 64:
            found.append("--replicas must be between 1 and 64")
        if not 1024 <= self.first_port <= 65535 - self.replicas:
            found.append("--first-port must leave room for every replica between 1024 and 65535")
        if not 1 <= self.listen <= 65535:
            found.append("--listen must be a port")
        if self.first_port <= self.listen < self.first_port + self.replicas:
            found.append("--listen must differ from the replicas' ports")
        for name, value in (("--server-name", self.server_name), ("--user", self.user)):
            if not value or any(c.isspace() or c in ';{}"\'$\\' for c in value):
                found.append(f"{name} must be one word without quotes, braces, ; or $")
        for name, value in (("--checkout", self.checkout), ("--config-dir", self.config_dir),
                            ("--data-dir", self.data_dir)):
            if not PurePosixPath(value).is_absolute() or any(c.isspace() or c in ';{}"\'$\\%' for c in value):
                found.append(f"{name} must be an absolute path without spaces, quotes, braces, %, ; or $")
        return found

    @property
    def ports(self) -> list[int]:
        return list(range(self.first_port, self.first_port + self.replicas))


def nginx_site(plan: Plan) -> str:
    """A site for /etc/nginx/sites-available (inside nginx's http block)."""
    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;" for port in plan.ports)
    return f"""# hyperalign: {plan.replicas} replicas behind one address. Written by `hyperalign deploy`.
# Each browser keeps one replica (Chainlit holds a chat's socket in one process): a random route cookie,
# set on its first request, picks the replica; one that is down is skipped and its browsers move on.

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
# Upgrade for the socket; otherwise an empty Connection header, so upstream connections are reused.
map $http_upgrade $hyperalign_connection {{
    default upgrade;
    "" "";
}}

server {{
    listen {plan.listen};
    server_name {plan.server_name};
    client_max_body_size {plan.upload_limit_mb}m;

    location / {{
        proxy_pass http://hyperalign;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $hyperalign_connection;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 5s;
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
        proxy_buffering off;
        add_header Set-Cookie $hyperalign_route_cookie always;
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
# The model server (README, "Connecting a model"); without one the app runs in offline mode:
# OPENAI_BASE_URL=http://127.0.0.1:11434/v1
# OPENAI_API_KEY=
# HYPERALIGN_CHAT_MODEL=
"""


def install_steps(plan: Plan) -> str:
    units = " ".join(f"hyperalign@{port}" for port in plan.ports)
    ports = f"{plan.ports[0]}-{plan.ports[-1]}"
    return f"""hyperalign: {plan.replicas} replicas on ports {ports}, a worker, nginx on port {plan.listen}.

1. Fill in DATABASE_URL and the model settings in hyperalign.env, then:
     install -d -m 700 -o {plan.user} {plan.config_dir} {plan.data_dir}
     install -m 600 -o {plan.user} hyperalign.env {plan.config_dir}/hyperalign.env
2. Check them before anything starts (it reports pending migrations, the model server and its window):
     sudo -u {plan.user} sh -c 'set -a; . {plan.config_dir}/hyperalign.env; {plan.checkout}/.venv/bin/hyperalign doctor'
3. Processes (the first to start migrates the database; the others wait for it):
     cp systemd/hyperalign@.service systemd/hyperalign-worker.service /etc/systemd/system/
     systemctl daemon-reload
     systemctl enable --now {units} hyperalign-worker
4. The proxy (terminate TLS here, or in front of it: the route cookie is then marked Secure):
     cp nginx/hyperalign.conf /etc/nginx/sites-available/hyperalign
     ln -s /etc/nginx/sites-available/hyperalign /etc/nginx/sites-enabled/hyperalign
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
