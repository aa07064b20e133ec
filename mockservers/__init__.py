"""Mock vLLM and mock Dynamo servers that speak the real wire shapes, backed by one deterministic engine.

Written independently of ``renderers.client``: nothing here imports the client or its parsing code,
so that the conformance suite compares two sides that were each checked against real recordings.
"""
