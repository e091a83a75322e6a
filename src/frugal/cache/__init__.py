"""The semantic cache: embedder, scopes, the cache itself, and its stores."""
