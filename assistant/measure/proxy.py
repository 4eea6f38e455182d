"""nginx in front of local replicas, for `bench load --replicas` and the replica tests: the site
`hyperalign deploy` writes, included in a minimal main configuration (as Debian's nginx.conf includes
sites-enabled/), with every path under one folder so nothing of the machine's own nginx is touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX = Path("/usr/sbin/nginx")


def main_config(site: Path, prefix: Path, *, routes_log: Path | None = None) -> str:
    """`routes_log`: where each request went (its route, the replica, the request line), for tests."""
    temp = " ".join(f"{kind}_temp_path {prefix / 'temp' / kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would drop to `nobody`, who cannot write this folder.
    user = "user root;" if os.geteuid() == 0 else ""
    # $hyperalign_route is the site's own map: the route the request was hashed on.
    routes = (f"log_format routes '$hyperalign_route $upstream_addr \"$request\" $status';\n"
              f"    access_log {routes_log} routes;" if routes_log else "access_log off;")
    return f"""{user}
daemon off;
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} warn;
events {{ worker_connections 4096; }}
http {{
    {routes}
    {temp}
    include {site};
}}
"""


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def nginx_serving(site_text: str, prefix: Path, listen: int, *, routes_log: Path | None = None,
                  ) -> Iterator[subprocess.Popen]:
    """nginx running `site_text` until the block ends; raises when nginx refuses the site or does not start."""
    if not NGINX.exists():
        raise RuntimeError(f"{NGINX} not found (apt-get install nginx)")
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)  # nginx opens its default log here before reading the config
    site = prefix / "hyperalign.conf"
    site.write_text(site_text)
    main = prefix / "nginx.conf"
    main.write_text(main_config(site, prefix, routes_log=routes_log))
    check = subprocess.run([str(NGINX), "-t", "-p", str(prefix), "-c", str(main)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx refused the site:\n{check.stderr}")
    with open(prefix / "stderr.log", "wb") as stderr:  # the child keeps its own descriptor
        process = subprocess.Popen([str(NGINX), "-p", str(prefix), "-c", str(main)],
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 15
        while not _listening(listen):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{(prefix / 'stderr.log').read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
