"""RendererPool: delegation, size/lock semantics, and identical ids under concurrent threads."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from renderers.families.qwen3 import Qwen3Renderer
from renderers.pool import RendererPool
from renderers.protocol import Renderer
from tests.helpers.qwen3_tokenizer import qwen3_tokenizer, template_ids


@pytest.fixture(scope="module")
def tok() -> Any:
    return qwen3_tokenizer()


def _conversations() -> list[list[dict[str, Any]]]:
    out = []
    for i in range(24):
        msgs: list[dict[str, Any]] = [{"role": "system", "content": f"sys {i} " * (i % 3)}]
        for k in range(i % 5 + 1):
            msgs.append({"role": "user", "content": f"question {i}.{k} é\n\n  " * (k + 1)})
            msgs.append({"role": "assistant", "content": f"answer {k}", "reasoning_content": "why " * k})
        out.append(msgs)
    return out


@pytest.mark.parametrize("size", [1, 3])
def test_pool_concurrent_ids_match_template(tok: Any, size: int) -> None:
    built: list[Qwen3Renderer] = []

    def factory() -> Qwen3Renderer:
        r = Qwen3Renderer(copy.deepcopy(tok))
        built.append(r)
        return r

    pool = RendererPool(factory, size)
    assert isinstance(pool, Renderer)
    assert pool.size == size
    assert pool.renderer_cls is Qwen3Renderer
    assert pool.supports_tools
    assert len(built) == size
    assert len({id(r.tokenizer) for r in built}) == size  # each slot owns its tokenizer

    convs = _conversations() * 4
    expected = [template_ids(tok, m, add_generation_prompt=True) for m in convs]
    with ThreadPoolExecutor(max_workers=8) as ex:
        got = list(ex.map(lambda m: pool.render_ids(m, add_generation_prompt=True), convs))
        rendered = list(ex.map(lambda m: pool.render(m, add_generation_prompt=True), convs))
    assert got == expected
    assert [r.token_ids for r in rendered] == expected
    assert pool.get_stop_token_ids() == [151645, 151643]
    parsed = pool.parse_response(tok.encode("<think>\nx\n</think>\n\nhi<|im_end|>"))
    assert (parsed.reasoning_content, parsed.content) == ("x", "hi")


def test_checkout_is_exclusive() -> None:
    class Slow:
        supports_tools = False
        active = 0
        peak = 0
        lock = threading.Lock()

        def get_stop_token_ids(self) -> list[int]:
            with Slow.lock:
                Slow.active += 1
                Slow.peak = max(Slow.peak, Slow.active)
            threading.Event().wait(0.01)
            with Slow.lock:
                Slow.active -= 1
            return [0]

    pool = RendererPool(Slow, 2)  # type: ignore[arg-type]
    assert not pool.supports_tools
    with ThreadPoolExecutor(max_workers=6) as ex:
        list(ex.map(lambda _: pool.get_stop_token_ids(), range(24)))
    assert Slow.peak <= 2
    with pool.checkout() as a, pool.checkout() as b:
        assert a is not b


@pytest.mark.parametrize("size", [0, -1, True, 1.5])
def test_bad_size(size: Any) -> None:
    with pytest.raises(ValueError, match="size"):
        RendererPool(lambda: None, size)  # type: ignore[arg-type,return-value]


def test_first_renderer_is_built_alone_before_the_fan_out() -> None:
    """Regression: 4 threads' concurrent first import of transformers failed (ImportError on AutoTokenizer). The
    first factory call (which does the first imports) now runs alone on the calling thread."""
    import threading
    import time

    from renderers.pool import RendererPool

    active = 0
    calls: list[tuple[int, bool]] = []
    lock = threading.Lock()
    caller = threading.get_ident()

    class R:
        supports_tools = True

    def factory() -> R:
        nonlocal active
        with lock:
            active += 1
            calls.append((active, threading.get_ident() == caller))
        time.sleep(0.01)
        with lock:
            active -= 1
        return R()

    RendererPool(factory, 4)  # type: ignore[arg-type]
    assert len(calls) == 4
    assert calls[0] == (1, True)
