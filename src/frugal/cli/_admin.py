"""Commands that talk to a running gateway's admin routes (`frugal.admin_client`): the cache
(`cache stats | list | invalidate | flush | reembed`, `cache labels export`) and shadow mode's
report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from frugal.admin_client import AdminClient
from frugal.bench.report import share
from frugal.config import DEFAULT_THRESHOLD

T = TypeVar("T")

UrlOption = Annotated[str, typer.Option(envvar="FRUGAL_URL", help="The gateway's base URL.")]
AdminKeyOption = Annotated[
    str, typer.Option(envvar="FRUGAL_ADMIN_KEY", help="The admin key.", show_default=False)
]

cache_app = typer.Typer(no_args_is_help=True, help="Inspect and invalidate a gateway's cache.")
labels_app = typer.Typer(
    no_args_is_help=True, help="Labelled pairs from wrong-hit reports and shadow mode."
)


def _admin_call(url: str, admin_key: str, call: Callable[[AdminClient], T]) -> T:
    """``call`` on a client of the gateway at ``url``; a refusal or an unreachable gateway
    ends the command with exit code 1."""
    try:
        with AdminClient(url, admin_key) as client:
            return call(client)
    except httpx.HTTPStatusError as exc:
        typer.echo(f"frugal: {exc.response.status_code}: {exc.response.text}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"frugal: cannot reach {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from None


@cache_app.command("stats")
def cache_stats(admin_key: AdminKeyOption, url: UrlOption = "http://127.0.0.1:8080") -> None:
    """Print the gateway's cache statistics as JSON."""
    typer.echo(json.dumps(_admin_call(url, admin_key, AdminClient.stats), indent=2))


@cache_app.command("list")
def cache_list(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    offset: int = 0,
    limit: int = 50,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's entries.")] = None,
) -> None:
    """List cached entries, newest first."""
    found = _admin_call(
        url, admin_key, lambda c: c.entries(offset=offset, limit=limit, tenant=tenant)
    )
    table = Table("id", "partition", "model", "embedder", "prompt", "hits", "expires in")
    now = time.time()
    for entry in found:
        table.add_row(
            entry["id"],
            entry["partition"],
            entry["labels"].get("model", ""),
            entry.get("model", ""),
            entry["prompt"][:60],
            str(entry["hits"]),
            f"{max(0, entry['expires_at'] - now):.0f} s",
        )
    Console().print(table)


@cache_app.command("invalidate")
def cache_invalidate(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    entry_id: Annotated[list[str] | None, typer.Option("--id", help="An entry id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Every entry of a tenant.")] = None,
    scope: Annotated[str | None, typer.Option(help="Every entry of a scope.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Entries similar to this prompt.")] = None,
    threshold: Annotated[float, typer.Option(help="Similarity for --prompt.")] = DEFAULT_THRESHOLD,
) -> None:
    """Remove entries by id, tenant, scope, or similarity to a prompt."""
    selector: dict[str, object] = {}
    if entry_id:
        selector["ids"] = entry_id
    if tenant is not None:
        selector["tenant"] = tenant
    if scope is not None:
        selector["scope"] = scope
    if prompt is not None:
        selector.update(prompt=prompt, threshold=threshold)
    removed = _admin_call(url, admin_key, lambda c: c.invalidate(selector))
    typer.echo(f"invalidated {removed} entries")


@cache_app.command("flush")
def cache_flush(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every cached entry."""
    if not yes:
        typer.confirm(f"Flush the whole cache of {url}?", abort=True)
    typer.echo(f"flushed {_admin_call(url, admin_key, AdminClient.flush)} entries")


@cache_app.command("reembed")
def cache_reembed(admin_key: AdminKeyOption, url: UrlOption = "http://127.0.0.1:8080") -> None:
    """Embed the cached prompts of other embedding models again with the gateway's model, so
    that its earlier answers are hits again after a change of FRUGAL_EMBEDDER_MODEL."""

    def reembed(client: AdminClient) -> dict[str, Any]:
        last: dict[str, Any] = {}
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("re-embedding", total=None)
            for line in client.reembed():
                if "error" in line:
                    typer.echo(f"frugal: re-embedding failed: {line['error']['message']}", err=True)
                    raise typer.Exit(1)
                bar.update(task, completed=line["done"], total=line["total"])
                bar.update(task, description=f"re-embedding with {line['model']}")
                last = line
        return last

    done = _admin_call(url, admin_key, reembed)
    typer.echo(f"re-embedded {done['reembedded']} of {done['total']} entries with {done['model']}")


@labels_app.command("export")
def labels_export(
    admin_key: AdminKeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: standard output).")
    ] = None,
) -> None:
    """Write the gateway's labelled pairs as JSONL ({"a", "b", "label"} and where each came
    from), the format `frugal model tune --pairs` reads."""

    def export(client: AdminClient) -> int:
        lines = 0
        # Standard output is the caller's to close, a file is ours.
        sink_context = out.open("wb") if out is not None else nullcontext(sys.stdout.buffer)
        with sink_context as sink:
            for chunk in client.labels():
                sink.write(chunk)
                lines += chunk.count(b"\n")
        return lines

    written = _admin_call(url, admin_key, export)
    if out is not None:
        typer.echo(f"wrote {written} labelled pairs to {out}", err=True)


cache_app.add_typer(labels_app, name="labels")


def shadow_report(admin_key: AdminKeyOption, url: UrlOption = "http://127.0.0.1:8080") -> None:
    """What a gateway in shadow mode saw: would-be hits and diverged answers by threshold."""
    report = _admin_call(url, admin_key, AdminClient.shadow_report)
    table = Table(
        title=f"shadow mode: {report['requests']:,} cacheable requests, "
        f"{report['compared']:,} would-be hits compared"
    )
    for column in ["threshold", "would-be hits", "hit rate", "identical", "diverged"]:
        table.add_column(column, justify="right")
    for row in report["thresholds"]:
        table.add_row(
            f"{row['threshold']:.2f}",
            f"{row['would_be_hits']:,}",
            share(row["would_be_hit_rate"]),
            share(row["identical_share"]),
            share(row["diverged_share"]),
        )
    Console().print(table)
    typer.echo(
        f"diverged: the cached and the fresh answers' similarity is below "
        f"{report['diverged_below']:.2f}"
    )
    typer.echo(_estimate_line(report["estimate"]))


def _estimate_line(estimate: dict[str, Any]) -> str:
    """The live wrong-hit rate at the threshold in force, against the budget if one is set."""
    at = f"at the threshold in force ({estimate['threshold']:g})"
    if not estimate["hits"]:
        return f"live wrong-hit rate {at}: no would-be hit compared yet"
    line = (
        f"live wrong-hit rate {at}: {share(estimate['wrong_hit_rate'])} "
        f"({estimate['wrong_hits']} diverged of {estimate['hits']:,} would-be hits)"
    )
    if estimate["budget"] is None:
        return line
    verdict = "ABOVE" if estimate["over_budget"] else "within"
    return f"{line}, {verdict} the budget of {share(estimate['budget'])}"
