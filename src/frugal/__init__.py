"""frugal, an LLM gateway: a semantic cache and dynamic batching in front of any
OpenAI-compatible provider. See the README for the two commands that run it."""
