"""The public surface: everything in ``renderers.__all__`` resolves, and the lazy names are the real objects."""

from __future__ import annotations

import importlib

import pytest

import renderers


@pytest.mark.parametrize("name", sorted(renderers.__all__))
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(renderers, name) is not None


def test_lazy_exports_are_the_defining_modules_objects() -> None:
    from renderers.client import EngineClient, generate
    from renderers.families.qwen3 import Qwen3Renderer
    from renderers.pool import RendererPool

    assert renderers.generate is generate
    assert renderers.EngineClient is EngineClient
    assert renderers.Qwen3Renderer is Qwen3Renderer
    assert renderers.RendererPool is RendererPool


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = renderers.no_such_name


def test_importing_renderers_does_not_import_the_http_stack() -> None:
    # A fresh interpreter: importing the package alone must not pull aiohttp/httpx in.
    import subprocess
    import sys

    code = "import sys, renderers; print('aiohttp' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_mockservers_never_imports_the_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mockservers.dynamo, mockservers.vllm, mockservers.cli, mockservers.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m == 'renderers' or m.startswith('renderers.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert importlib.util.find_spec("mockservers") is not None


def test_client_public_names_are_exactly_its_all() -> None:
    """httpx's shape: the package's ``__all__`` is its whole public surface, every module behind it is private."""
    import pkgutil
    import types

    import renderers.client as client

    public = {
        name
        for name, value in vars(client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public == set(client.__all__)
    assert client.__all__ == sorted(client.__all__)
    modules = [m.name for m in pkgutil.walk_packages(client.__path__, "renderers.client.")]
    assert "renderers.client._generate" in modules
    for module in modules:  # a module inside a private package (``_transports.base``) is private too
        assert module.removeprefix("renderers.client.").split(".")[0].startswith("_"), module


def test_every_client_export_is_re_exported_by_renderers() -> None:
    import renderers.client as client

    for name in client.__all__:
        assert getattr(renderers, name) is getattr(client, name), name


def test_retry_policy_is_public() -> None:
    from renderers.client import RetryPolicy, generate

    assert renderers.RetryPolicy is RetryPolicy
    assert RetryPolicy(retries=2).retries == 2
    assert "RetryPolicy" in (generate.__doc__ or "")
