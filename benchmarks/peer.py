"""The published ``renderers==0.1.12`` vLLM response parser, loaded beside this project's ``renderers``.

The peer has the same distribution name as this project, so ``nox -s bench`` installs it with
``pip install --no-deps --target <dir> renderers==0.1.12`` and points ``RENDERERS_BENCH_PEER_DIR`` at ``<dir>``.
Its modules are loaded from there under the name ``renderers_peer`` by a meta-path finder that rewrites the
peer's own absolute ``renderers.*`` imports to ``renderers_peer.*`` at compile time: this project's
``renderers`` is never shadowed, not even while the peer loads. The peer's package ``__init__`` is not run (it
imports optional dependencies the parser does not need); only ``renderers/base.py`` and ``renderers/client.py``
load, and they need only httpx and openai.

In 0.1.12 the vLLM response path is ``renderers/client.py``: ``parse_generate_response(raw)`` (cuts the
``routed_experts`` base64 out of the bytes, ``json.loads`` of the rest, puts a memoryview back) followed by
``_parse_completion_logprobs(choice, completion_ids)``. A consumer then decodes the base64; the peer leaves that
to the caller, so the benchmark follows it with the stdlib ``base64.b64decode``.
"""

from __future__ import annotations

import ast
import base64
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

ENV: Final = "RENDERERS_BENCH_PEER_DIR"
ALIAS: Final = "renderers_peer"
PEER_VERSION: Final = "0.1.12"


class _Rewrite(ast.NodeTransformer):
    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.ImportFrom:
        mod = node.module
        if node.level == 0 and mod is not None and (mod == "renderers" or mod.startswith("renderers.")):
            node.module = ALIAS + mod[len("renderers") :]
        return node

    def visit_Import(self, node: ast.Import) -> ast.Import:
        for alias in node.names:
            if alias.name == "renderers" or alias.name.startswith("renderers."):
                if alias.asname is None:
                    raise ImportError(f"peer uses `import {alias.name}` without `as`; cannot alias it safely")
                alias.name = ALIAS + alias.name[len("renderers") :]
        return node


class _Loader(importlib.machinery.SourceFileLoader):
    def source_to_code(self, data: Any, path: Any = "<peer>", *, _optimize: int = -1) -> types.CodeType:  # type: ignore[override]
        tree = ast.parse(data, filename=str(path))
        tree = ast.fix_missing_locations(_Rewrite().visit(tree))
        code: types.CodeType = compile(tree, str(path), "exec", dont_inherit=True)
        return code

    def get_code(self, fullname: str) -> types.CodeType:
        # Never read or write __pycache__: the cached bytecode would be the unrewritten module.
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(ALIAS + "."):
            return None
        rel = fullname[len(ALIAS) + 1 :].replace(".", "/")
        file = self.root / "renderers" / f"{rel}.py"
        if not file.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, file, loader=_Loader(fullname, str(file)))


def peer_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def load_peer_module(name: str, root: Path | None = None) -> types.ModuleType:
    """``renderers_peer.<name>`` (the 0.1.12 ``renderers/<name>.py``); ``RuntimeError`` when not installed.

    The family renderers (``qwen35``, ``deepseek_v3``, ``gpt_oss``, ...) also need the peer's own dependencies
    ``prime-pydantic-config`` and ``openai-harmony`` importable; nox installs them beside the project.
    """
    root = root or peer_dir()
    if root is None or not (root / "renderers" / f"{name}.py").is_file():
        raise RuntimeError(
            f"the peer renderers=={PEER_VERSION} (module {name!r}) is not installed: set {ENV} to a "
            "`pip install --no-deps --target` directory (nox -s bench and nox -s tests do this)"
        )
    if ALIAS not in sys.modules:
        pkg = types.ModuleType(ALIAS, f"renderers=={PEER_VERSION} loaded from {root} (package __init__ not run)")
        pkg.__path__ = [str(root / "renderers")]
        sys.modules[ALIAS] = pkg
        sys.meta_path.insert(0, _Finder(root))
    return importlib.import_module(f"{ALIAS}.{name}")


def load_peer_client(root: Path | None = None) -> types.ModuleType:
    """``renderers_peer.client`` (the 0.1.12 ``renderers/client.py``); ``RuntimeError`` when not installed."""
    client = load_peer_module("client", root)
    if not callable(getattr(client, "parse_generate_response", None)):
        raise RuntimeError(f"{client.__file__} has no parse_generate_response")
    return client


def peer_version(root: Path | None = None) -> str:
    root = root or peer_dir()
    if root is None:
        return "not installed"
    for info in root.glob("renderers-*.dist-info"):
        return info.name.removeprefix("renderers-").removesuffix(".dist-info")
    return "unknown"


def make_peer_parse(client: types.ModuleType) -> Any:
    """bytes -> (ids, logprobs, uint8 array | None) the way a 0.1.12 consumer does it (vLLM shape only)."""
    parse_generate_response = client.parse_generate_response
    parse_logprobs = client._parse_completion_logprobs

    def peer_parse(raw: bytes) -> tuple[list[int], list[float], npt.NDArray[Any] | None]:
        data = parse_generate_response(raw)
        choice = (data.get("choices") or [{}])[0]
        ids = choice.get("token_ids") or []
        logprobs = parse_logprobs(choice, ids)
        routed = choice.get("routed_experts")
        arr = None
        if routed is not None:
            raw_table = base64.b64decode(routed["data"])
            arr = np.frombuffer(raw_table, dtype=np.uint8).reshape(routed["shape"])
        return list(ids), logprobs, arr

    return peer_parse
