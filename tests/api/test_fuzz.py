"""The OpenAPI document, fuzzed by schemathesis with every check it has (`schemathesis.toml`).

Schema-valid and schema-violating requests on every operation: no 5xx, no undocumented status
or content type, every error body in OpenAI's shape, valid data accepted, invalid data refused,
admin routes refused without the admin key. `make fuzz` runs the same with more examples.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from tests.conftest import ADMIN_KEY, ROOT, StackFactory

# Fixed, so that a failure in CI replays; `make fuzz` draws a new seed each run.
SEED = "20261126"


def schemathesis(gateway_url: str, *options: str, timeout_s: float) -> tuple[int, str]:
    """Run schemathesis (`schemathesis.toml`, with the admin key) on the gateway's document;
    its exit code and its whole report."""
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file"),
        *(str(ROOT / "schemathesis.toml"), "--no-color", "run"),
        *(gateway_url + "/openapi.json", *options),
    ]
    env = {**os.environ, "FRUGAL_ADMIN_KEY": ADMIN_KEY}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    return result.returncode, result.stdout + result.stderr


def test_fuzzing_the_openapi_document_finds_nothing(make_stack: StackFactory) -> None:
    stack = make_stack()
    examples = os.environ.get("FRUGAL_FUZZ_EXAMPLES")
    seeding = ["--max-examples", examples] if examples else ["--seed", SEED]
    returncode, report = schemathesis(stack.gateway.url, *seeding, timeout_s=1200)
    assert returncode == 0, report[-8000:]
    # Every operation was reached, whole: a run that tested nothing cannot pass.
    operations = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", report)
    assert operations is not None and len(set(operations.groups())) == 1, report[-3000:]
    assert "Unresolvable" not in report
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated is not None and int(generated[1]) >= 200, report[-3000:]
    assert generated[1] == generated[2]


def test_the_document_resolves_and_documents_openai_errors(make_stack: StackFactory) -> None:
    document = httpx.get(make_stack().gateway.url + "/openapi.json").json()
    text = str(document)
    assert "#/$defs/" not in text  # every reference resolves under components
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert "422" not in chat["responses"]  # a validation failure is a 400 here
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for status in ("400", "401", "413", "429", "502", "504", "4XX"):
        assert chat["responses"][status]["content"]["application/json"]["schema"] == error
    assert chat["parameters"][0]["name"] == "x-frugal-cache-control"
    assert document["paths"]["/admin/stats"]["get"]["security"] == [{"bearer": []}]
