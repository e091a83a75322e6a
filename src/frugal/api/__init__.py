"""The HTTP face of frugal: the app factory, OpenAI-compatible routes, errors."""
