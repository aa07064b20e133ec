"""Mock vLLM 0.32: ``rules`` (request validation tables), ``responses`` (bodies), ``app`` (routes)."""

from mockservers.vllm.app import create_app, vllm_error

__all__ = ["create_app", "vllm_error"]
