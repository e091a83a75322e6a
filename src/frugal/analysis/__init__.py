"""Offline tools that help pick a threshold: labelled pairs (`tune`) and prompt logs
(`analyze`), embedded with the gateway's own embedder."""
