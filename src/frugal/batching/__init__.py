"""Sending cache misses upstream together: the generic batcher and the coalescer."""
