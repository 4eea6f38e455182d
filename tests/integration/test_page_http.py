"""What the browser is told and given, over HTTP on SQLite and PostgreSQL: security headers on every
kind of response, and pages that reference nothing on another host."""

import re

import httpx
import pytest

from tests.appserver import fresh, signed_in_operator


@pytest.fixture(scope="module")
def served(shared_app):
    server, engine = shared_app
    client = signed_in_operator(server, engine, fresh("pat"))  # an operator, to be let into the console
    yield server, client
    client.close()


def directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


RESPONSES = {  # method, path, signed in, status
    "the chat page": ("GET", "/", True, 200),
    "a thread page": ("GET", "/thread/some-thread", True, 200),
    "an API route": ("GET", "/api/health", True, 200),
    "a public file": ("GET", "/public/theme.json", True, 200),
    "a console page": ("GET", "/console", True, 200),
    "an error": ("GET", "/api/me/profile/entries/1/evidence", False, 401),
    "a body too large": ("POST", "/api/me/profile/entries", True, 413),
}


@pytest.mark.parametrize("what", RESPONSES)
def test_every_response_carries_the_security_headers(served, what):
    server, client = served
    method, path, signed_in, status = RESPONSES[what]
    response = (client if signed_in else httpx).request(method, path if signed_in else server.base_url + path,
                                                       content=b"{}" * 10**5 if status == 413 else None)
    assert response.status_code == status, response.text[:200]
    policy = directives(response.headers["content-security-policy"])
    assert policy["img-src"] == "'self' data: blob:"  # the remote-image channel stays closed
    assert policy["frame-ancestors"] == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-inline'" and policy["font-src"] == "'self' data:"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"  # no window handle for other sites


EXTERNAL = re.compile(r"""(?:href|src|content)\s*=\s*["']?\s*(?:https?:)?//|@import|url\(\s*["']?\s*(?:https?:)?//|https?://""",
                      re.I)


@pytest.mark.parametrize("path", ["/", "/thread/some-thread", "/login", "/share/some-thread"])
def test_the_pages_reference_nothing_on_another_host(served, path):
    """The README promises nothing leaves the machine: no CDN stylesheet, no font host, no preconnect."""
    _, client = served
    page = client.get(path)
    assert page.status_code == 200 and "<div id=\"root\">" in page.text  # still Chainlit's page
    assert EXTERNAL.findall(page.text) == []
    assert '<script type="module" crossorigin src="/assets/' in page.text  # its scripts untouched
