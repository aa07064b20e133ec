"""Mock servers under bad input: garbage and hypothesis request bodies, wrong content types, oversize bodies, slow
senders, many idle connections. Always a 4xx in the server's own error envelope (413 for oversize), never a 500
unless a fault was scripted, never a crash; memory stays bounded."""

from __future__ import annotations

import gc
import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockservers.config import MockConfig
from mockservers.server import MockServer
from tests.fuzz.counter import count

LIMIT = 256 * 1024  # body size limit of the fuzzed servers
KINDS = ("vllm", "dynamo")
ROUTES = {
    "vllm": [("POST", "/inference/v1/generate"), ("GET", "/v1/models"), ("GET", "/health"), ("GET", "/version")],
    "dynamo": [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"),
               ("GET", "/health"), ("GET", "/live"), ("GET", "/metrics")],
}  # fmt: skip


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MockServer]]:
    started = {k: MockServer(k, MockConfig(max_body_bytes=LIMIT, moe_layers=2, journal_size=50)).start() for k in KINDS}
    yield started
    for s in started.values():
        s.stop()


class Conn:
    """A keep-alive ``http.client`` connection that reconnects when the server closed it."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


DELIBERATE_5XX = {
    ("dynamo", 501, "the mock serves /v1/completions without streaming only"),  # a documented limit of the mock
    ("vllm", 500, ""),  # vLLM's answer to a ValueError inside its engine (trace-replay checks): an empty 500
}
"""Answers of 500 and above that are the server's rules, not a crash: (server, status, message)."""


def check_envelope(kind: str, status: int, data: bytes, path: str) -> None:
    """A non-2xx answer: the right envelope for the server kind, ``code`` equal to the status."""
    if status >= 500:
        doc = orjson.loads(data)
        message = (doc.get("error") or {}).get("message") if kind == "vllm" else doc.get("message")
        assert (kind, status, message) in DELIBERATE_5XX, f"{kind} {path}: HTTP {status}: {data[:300]!r}"
        return
    assert status >= 400, status
    doc = orjson.loads(data)
    if kind == "vllm":
        if "detail" in doc:  # FastAPI's own envelope for unknown routes and methods, as real vLLM sends it
            assert status in (404, 405), (status, doc)
            return
        err = doc["error"]
        assert isinstance(err["message"], str)
        assert err["message"]
        assert isinstance(err["type"], str)
        assert err["code"] == status
    else:
        assert isinstance(doc["message"], str)
        assert doc["message"]
        assert isinstance(doc["type"], str)
        assert doc["code"] == status


# ---- request bodies ---------------------------------------------------------------------------------------
ODD = ["{{ 7*7 }}", "{% for x in range(9**9) %}", "tiny-qwen3", "__class__", "${jndi:x}", "user", "assistant"]
ODD = ["{{ 7*7 }}", "{% for x in range(9**9) %}", "tiny-qwen3", "__class__", "${jndi:x}", "user", "assistant"]
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                      st.text(max_size=10), st.sampled_from(ODD))  # fmt: skip
JSON = st.recursive(JSON_LEAF, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=10)  # fmt: skip


def _near_valid(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies close to a valid request, with fuzzed values: they reach deep into validation."""
    ids = st.lists(st.one_of(st.integers(0, 2400), JSON_LEAF), max_size=6)
    sp = st.dictionaries(st.sampled_from(["max_tokens", "temperature", "top_p", "top_k", "n", "seed", "logprobs",
                                          "min_tokens", "stop_token_ids", "ignore_eos", "prompt_logprobs",
                                          "routed_experts_prompt_start", "skip_special_tokens"]),
                         st.one_of(st.integers(-3, 40), JSON_LEAF, ids), max_size=5)  # fmt: skip
    if kind == "vllm":
        return st.fixed_dictionaries({"token_ids": ids, "sampling_params": sp},
                                     optional={"model": JSON_LEAF, "stream": JSON_LEAF, "cache_salt": JSON_LEAF,
                                               "priority": JSON_LEAF, "output_mode": JSON_LEAF})  # fmt: skip
    role = st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), JSON_LEAF)
    message = st.fixed_dictionaries(
        {"role": role}, optional={"content": st.one_of(JSON_LEAF, st.lists(JSON, max_size=2))}
    )
    nvext = st.dictionaries(st.sampled_from(["token_data", "extra_fields", "cache_salt", "agent_hints",
                                             "routed_experts_prompt_start", "greed_sampling", "dp_rank", "bogus"]),
                            st.one_of(ids, JSON_LEAF, st.lists(st.sampled_from(["engine_data", "routed_experts"]))),
                            max_size=4)  # fmt: skip
    return st.fixed_dictionaries(
        {"model": st.one_of(st.just("tiny-qwen3"), JSON_LEAF),
         "messages": st.one_of(st.lists(message, max_size=3), JSON)},
        optional={"nvext": st.one_of(nvext, JSON_LEAF),
                  "max_completion_tokens": st.one_of(st.integers(-2, 30), JSON_LEAF),
                  "max_tokens": st.integers(-2, 30), "logprobs": JSON_LEAF, "top_logprobs": st.integers(-2, 30),
                  "stream": st.booleans(), "temperature": JSON_LEAF, "tools": JSON, "unknown_key": JSON_LEAF,
                  "prompt": st.one_of(st.text(max_size=10), ids), "echo": JSON_LEAF},
    )  # fmt: skip


@st.composite
def requests(draw: st.DrawFn, kind: str) -> tuple[str, str, bytes | None, dict[str, str]]:
    method, path = draw(st.sampled_from([*ROUTES[kind], ("GET", "/nope"), ("DELETE", "/v1/models"),
                                         ("POST", "/_mock/faults"), ("PUT", ROUTES[kind][0][1])]))  # fmt: skip
    body_kind = draw(st.sampled_from(["near-valid", "json", "garbage", "none", "big-json"]))
    body: bytes | None
    if body_kind == "near-valid":
        body = json.dumps(draw(_near_valid(kind))).encode()
    elif body_kind == "json":
        body = json.dumps(draw(JSON)).encode()
    elif body_kind == "garbage":
        body = draw(st.binary(max_size=200))
    elif body_kind == "big-json":
        body = b'{"token_ids":[' + b"1," * draw(st.integers(1000, 60_000)) + b'1],"messages":[]}'
    else:
        body = None
    ctype = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                  "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                  ""]))  # fmt: skip
    headers = {"Content-Type": ctype} if ctype else {}
    return method, path, body, headers


def _fuzz(servers: dict[str, MockServer], kind: str, req: tuple[str, str, bytes | None, dict[str, str]],
          conns: dict[str, Conn]) -> None:  # fmt: skip
    count(f"server: {kind} requests")
    method, path, body, headers = req
    server = servers[kind]
    conn = conns.setdefault(kind, Conn(server))
    status, data = conn.request(method, path, body, headers)
    if 200 <= status < 300:
        if path.startswith(("/v1/chat", "/inference", "/v1/models")) and not data.startswith(b"data:"):
            assert isinstance(orjson.loads(data), dict)
        return
    check_envelope(kind, status, data, path)


def _make(kind: str) -> Any:
    """One property per server; its example count is the loaded hypothesis profile's (``fuzz``: 10,000)."""
    conns: dict[str, Conn] = {}

    @given(req=requests(kind))
    def test(servers: dict[str, MockServer], req: tuple[str, str, bytes | None, dict[str, str]]) -> None:
        _fuzz(servers, kind, req, conns)

    return test


test_vllm_bad_requests = _make("vllm")
test_dynamo_bad_requests = _make("dynamo")


# ---- oversize, slow senders, idle connections ----------------------------------------------------------------
def _raw_exchange(port: int, payload: bytes, *, chunks: int = 1, pause: float = 0.0, timeout: float = 20) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        step = max(1, len(payload) // chunks)
        for i in range(0, len(payload), step):
            s.sendall(payload[i : i + step])
            if pause:
                time.sleep(pause)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _status_and_body(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def _post(path: str, body: bytes, *, chunked: bool = False, ctype: str = "application/json") -> bytes:
    if chunked:
        chunk = b"%x\r\n%s\r\n" % (len(body), body)
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n").encode() + chunk + b"0\r\n\r\n"  # fmt: skip
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversize_body_is_413_in_the_envelope(servers: dict[str, MockServer], kind: str, chunked: bool) -> None:
    path = ROUTES[kind][0][1]
    raw = _raw_exchange(servers[kind].port, _post(path, b" " * (LIMIT + 1), chunked=chunked))
    status, body = _status_and_body(raw)
    assert status == 413, raw[:300]
    check_envelope(kind, status, body, path)


@pytest.mark.parametrize("kind", KINDS)
def test_oversize_declared_length_is_refused_before_reading(servers: dict[str, MockServer], kind: str) -> None:
    """A Content-Length of 10 GB with a few bytes behind it: 413 at once, no waiting for the body."""
    path = ROUTES[kind][0][1]
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {10**10}\r\n"
            "\r\n{").encode()  # fmt: skip
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", servers[kind].port), timeout=10) as s:
        s.sendall(head)
        raw = s.recv(65536)
    status, _body = _status_and_body(raw)
    assert status == 413
    assert time.monotonic() - t0 < 5


def _valid_body(kind: str) -> bytes:
    if kind == "vllm":
        return orjson.dumps({"token_ids": [1, 2, 3], "sampling_params": {"max_tokens": 4, "logprobs": 1}})
    return orjson.dumps({"model": "tiny-qwen3", "messages": [{"role": "user", "content": ""}], "max_tokens": 4,
                         "nvext": {"token_data": [1, 2, 3]}, "logprobs": True})  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_slow_sender_is_served(servers: dict[str, MockServer], kind: str) -> None:
    """Headers and body trickled in 40 pieces over about a second: answered normally."""
    raw = _raw_exchange(servers[kind].port, _post(ROUTES[kind][0][1], _valid_body(kind)), chunks=40, pause=0.025)
    status, _ = _status_and_body(raw)
    assert status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_many_idle_connections_do_not_block_service(servers: dict[str, MockServer], kind: str) -> None:
    """300 idle sockets (some with half a request head) while a normal client is served; then they all go."""
    port = servers[kind].port
    idle: list[socket.socket] = []
    try:
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 3 == 0:
                s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Le")
            idle.append(s)
        for _ in range(5):
            status, _ = _status_and_body(_raw_exchange(port, _post(ROUTES[kind][0][1], _valid_body(kind))))
            assert status == 200
    finally:
        for s in idle:
            s.close()
    status, _ = _status_and_body(_raw_exchange(port, _post(ROUTES[kind][0][1], _valid_body(kind))))
    assert status == 200


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_a_4xx(servers: dict[str, MockServer], kind: str, ctype: str) -> None:
    path = ROUTES[kind][0][1]
    status, body = _status_and_body(_raw_exchange(servers[kind].port, _post(path, _valid_body(kind), ctype=ctype)))
    assert 400 <= status < 500
    check_envelope(kind, status, body, path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [300, pytest.param(4000, marks=pytest.mark.fuzz)])
def test_memory_stays_bounded(servers: dict[str, MockServer], kind: str, n: int) -> None:
    """Many bad and good requests (some near the size limit): the process RSS does not keep growing."""
    server = servers[kind]
    conn = Conn(server)
    path = ROUTES[kind][0][1]
    big = b'{"token_ids":[' + b"1," * (LIMIT // 2 - 20) + b"1]}"
    bodies = [_valid_body(kind), b"{not json", big, b"[]" * 1000]

    def burst(k: int) -> None:
        for i in range(k):
            status, _data = conn.request("POST", path, bodies[i % len(bodies)], {"Content-Type": "application/json"})
            assert status < 500
            count(f"server: {kind} requests")

    burst(n // 3)  # warm up: caches, journal ring, allocator pools
    gc.collect()
    before = psutil.Process().memory_info().rss
    burst(n)
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MB over {n} requests"
    assert len(server.journal()) <= 50


# ---- security defaults ---------------------------------------------------------------------------------------
def test_defaults_bind_loopback_and_keep_admin_off() -> None:
    cfg = MockConfig()
    assert cfg.host == "127.0.0.1"
    assert cfg.admin is False
    assert cfg.max_body_bytes > 0


@pytest.mark.parametrize("kind", KINDS)
def test_admin_endpoints_are_off_unless_enabled(servers: dict[str, MockServer], kind: str) -> None:
    conn = Conn(servers[kind])  # these servers were started with the default admin=False
    for method in ("GET", "POST", "DELETE"):
        status, data = conn.request(method, "/_mock/faults", b'{"status": 500}', {"Content-Type": "application/json"})
        assert status in (404, 405), (method, status)
        check_envelope(kind, status, data, "/_mock/faults")
    status, _data = conn.request("POST", ROUTES[kind][0][1], _valid_body(kind), {"Content-Type": "application/json"})
    assert status == 200  # the attempted fault did not take


@pytest.mark.parametrize("kind", KINDS)
def test_listens_on_loopback_only(servers: dict[str, MockServer], kind: str) -> None:
    assert servers[kind].url.startswith("http://127.0.0.1:")
    listening = [c for c in psutil.Process().net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == servers[kind].port]  # fmt: skip
    assert listening
    assert all(c.laddr.ip == "127.0.0.1" for c in listening)


def test_request_text_is_never_evaluated_as_a_template(servers: dict[str, MockServer]) -> None:
    """Jinja syntax in a message is data: the prompt is the same as for text of the same tokens without it."""
    conn = Conn(servers["dynamo"])
    tok = servers["dynamo"].state.tokenizer
    lengths = {}
    for text in ("{{ 7*7 }}", "{% for x in range(3) %}a{% endfor %}", "{{ ''.__class__.__mro__ }}"):
        body = orjson.dumps({"model": "tiny-qwen3", "messages": [{"role": "user", "content": text}], "max_tokens": 1})
        status, data = conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        assert status == 200, data
        lengths[text] = orjson.loads(data)["usage"]["prompt_tokens"]
        # the literal text is in the prompt: its own token count, not the count of "49" or "aaa"
        plain = tok.encode(text)
        assert lengths[text] >= len(plain)
        assert b"49" not in data or text != "{{ 7*7 }}" or b'"49"' not in data
