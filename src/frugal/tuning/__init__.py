"""``frugal model tune``: fine-tune the cache's embedder on labelled pairs, on the CPU.

One concept per module: `pairs` (the data and the held-out question clusters), `base` (the
packaged weights it starts from), `loss` (the objective), `trainer` (the resumable loop),
`checkpoint` (its saved state), `progress` (its bar), `calibration` (the validation curve),
`quantized` (the int8 variant), `manifest` (``model.json``, whose format its docstring draws)
and `run` (the whole run, `frugal.tuning.run.tune`).

torch and transformers (the ``export`` extra) are imported by `trainer`, `checkpoint`, `loss`
and `run` only; this package is never on the gateway's import path, and `manifest` reads a
model directory without them.
"""
