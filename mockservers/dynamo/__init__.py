"""Mock Dynamo 1.6.1 frontend: ``rules`` (request validation tables), ``responses`` (bodies), ``app`` (routes)."""

from mockservers.dynamo.app import create_app, dynamo_error

__all__ = ["create_app", "dynamo_error"]
