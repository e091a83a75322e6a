"""Reaching the provider: the OpenAI-compatible client and the simulated provider."""
