"""Pure: Chainlit's page keeps its own tags and loses every one that points to another host."""

from assistant.ui.headers import HEADERS, with_security_headers
from assistant.ui.page import local_only

CHAINLIT_PAGE = """<head>
    <title>hyperalign</title>
    <link rel="icon" href="/favicon" />
    <meta property="og:image" content="https://chainlit-cloud.s3.eu-west-3.amazonaws.com/logo/chainlit_banner.png">
    <meta property="og:url" content="https://github.com/Chainlit/chainlit">
    <meta property="og:root_path" content="">
    <link rel="preconnect" href="https://fonts.googleapis.com" />
    <link rel="preconnect" href="https://fonts.gstatic.com" crossorigin />
    <link href='//fonts.example/css2?family=Inter' rel=stylesheet>
    <link
      rel="stylesheet"
      href="https://cdn.jsdelivr.net/npm/katex@0.16.22/dist/katex.min.css"
    />
    <script src="https://cdn.example/x.js"></script>
    <script>
      const global = globalThis;
    </script>
    <script type="module" crossorigin src="/assets/index-B2u6IBgX.js"></script>
    <link rel="stylesheet" crossorigin href="/assets/index-BtjwbfYI.css">
  </head>"""


def test_tags_pointing_elsewhere_are_removed_and_our_own_are_kept():
    page = local_only(CHAINLIT_PAGE)
    assert "http" not in page and "//fonts" not in page
    for kept in ('<link rel="icon" href="/favicon" />', '<meta property="og:root_path" content="">',
                 "const global = globalThis;", '<script type="module" crossorigin src="/assets/index-B2u6IBgX.js"></script>',
                 '<link rel="stylesheet" crossorigin href="/assets/index-BtjwbfYI.css">'):
        assert kept in page


def test_a_page_without_such_tags_is_unchanged():
    own = "<html><a href='/console'>x</a><p>see https://example.org</p></html>"  # text and links stay
    assert local_only(own) == own


def test_security_headers_are_added_without_overriding_the_responses_own():
    headers = with_security_headers([(b"Content-Type", b"text/html"), (b"X-Frame-Options", b"DENY")])
    assert (b"X-Frame-Options", b"DENY") in headers and (b"x-frame-options", b"SAMEORIGIN") not in headers
    assert {name for name, _ in headers} >= set(HEADERS) - {b"x-frame-options"}
