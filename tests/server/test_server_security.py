"""The token rule, the Host and Origin checks, and the static-file guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_helpers import BASE_URL, WS, Built, receive_json
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from convscope.errors import UsageError
from convscope.server.app import STATIC_DIR, create_app, static_files
from convscope.server.security import COOKIE, choose_token, is_loopback

TOKEN = "s3cret-token"


@pytest.fixture
def guarded():
    b = Built(token=TOKEN)
    try:
        with TestClient(create_app(b.dashboard), base_url=BASE_URL) as c:
            yield c
    finally:
        b.close()


def test_choose_token_generates_unless_given_or_refused():
    a, b = choose_token("0.0.0.0", None, False), choose_token("127.0.0.1", None, False)
    assert a and b and a != b and len(a) >= 32
    assert choose_token("0.0.0.0", "mine", False) == "mine"
    assert choose_token("0.0.0.0", None, True) is None
    with pytest.raises(UsageError):
        choose_token("0.0.0.0", "mine", True)
    with pytest.raises(UsageError):
        choose_token("127.0.0.1", "  ", False)


@pytest.mark.parametrize(("host", "loop"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("127.8.0.1", True), ("0.0.0.0", False),
                                            ("192.168.1.4", False), ("example.org", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_page_needs_the_token(guarded):
    assert guarded.get("/").status_code == 403
    assert guarded.get("/?token=wrong").status_code == 403
    ok = guarded.get(f"/?token={TOKEN}")
    assert ok.status_code == 200 and 'data-testid="activation-grid"' in ok.text
    assert ok.cookies.get(f"{COOKIE}_8765") == TOKEN  # per port: cookies ignore ports
    # the cookie set on the first visit lets the page reload without the query
    assert guarded.get("/").status_code == 200
    with guarded.websocket_connect(WS) as ws:  # and the page's WebSocket too
        assert receive_json(ws, "hello")["type"] == "hello"
    # another dashboard's cookie (another port) is not this one's
    guarded.cookies.clear()
    guarded.cookies.set(f"{COOKIE}_9999", TOKEN)
    assert guarded.get("/").status_code == 403


def test_websocket_needs_the_token(guarded):
    for url in (WS, f"{WS}?token=wrong"):
        with pytest.raises(WebSocketDisconnect) as info, guarded.websocket_connect(url):
            pass
        assert info.value.code == 1008
    with guarded.websocket_connect(f"{WS}?token={TOKEN}") as ws:
        assert receive_json(ws, "hello")["model"] == "server_models:tiny_cnn"


def test_loopback_server_refuses_foreign_host_header(client):
    # a DNS-rebinding page reaches 127.0.0.1 under its own host name
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 403
    assert client.get("/static/app.js", headers={"host": "evil.example:8765"}).status_code == 403
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("ws://evil.example:8765/ws"):
        pass


def test_websocket_refuses_other_origins(client):
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(
        WS, headers={"origin": "http://evil.example"}
    ):
        pass
    assert info.value.code == 1008
    with client.websocket_connect(WS, headers={"origin": "http://127.0.0.1:8765"}) as ws:
        receive_json(ws, "hello")


def test_non_loopback_server_accepts_any_host_with_token():
    b = Built(token=TOKEN, loopback=False)
    try:
        with TestClient(create_app(b.dashboard), base_url="http://gpu-box.lan:8765") as c:
            assert c.get("/").status_code == 403
            assert c.get(f"/?token={TOKEN}").status_code == 200
    finally:
        b.close()


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py", "/static/%2e%2e%2fapp.py",
    "/static/..%5capp.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/....//app.py",
    "/static/./../../errors.py", "/static/static/app.js", "/static/", "/static/.", "/static/app.js/",
    "/static/APP.JS", "/static/app.js%00.png",
])
def test_static_files_cannot_leave_the_folder(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "import " not in r.text and "root:" not in r.text


def test_static_files_are_served(client):
    names = set(static_files())
    assert {"index.html", "app.js", "style.css"} <= names
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.content == (STATIC_DIR / "app.js").read_bytes()
    assert "text/css" in client.get("/static/style.css").headers["content-type"]


def test_symlink_out_of_the_folder_is_not_served(tmp_path: Path):
    (tmp_path / "page.html").write_text("ok")
    secret = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    secret.write_text("secret")
    (tmp_path / "leak.txt").symlink_to(secret)
    (tmp_path / ".hidden").write_text("x")
    assert set(static_files(tmp_path)) == {"page.html"}
