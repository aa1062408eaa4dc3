"""Dataset commands: init, create, list, info, update, delete."""

from __future__ import annotations

import json
import sys

import click

from datastore import InvalidRequest, shapes

from .common import Output, common_options, human_size, table


@click.command("init")
@common_options
def init_cmd(out: Output) -> None:
    """Create a store (every command also creates it on first use).

    \b
    Example:
      ds init --store /srv/ds
    """
    store = out.store
    out.emit({"store": str(store.root)}, f"store ready at {store.root}")


@click.command("create")
@click.argument("name")
@click.option("-d", "--description", default="", help="What the dataset holds.")
@click.option("--metadata", default=None, help="A JSON object of user metadata.")
@common_options
def create_cmd(out: Output, name: str, description: str, metadata: str | None) -> None:
    """Create an empty dataset.

    \b
    Example:
      ds create sales -d "daily sales exports"
    """
    info = out.store.create_dataset(name, description, _json_object(metadata))
    out.emit(shapes.dataset(info), f"created dataset {name}")


@click.command("list")
@common_options
def list_cmd(out: Output) -> None:
    """List datasets.

    \b
    Example:
      ds list --json
    """
    infos = [out.store.info(row.name) for row in out.store.list_datasets()]
    docs = [shapes.dataset(i) for i in infos]

    def human() -> None:
        table(
            [["NAME", "FILES", "SIZE", "LATEST", "DESCRIPTION"]]
            + [
                [
                    d["name"] + ("*" if d["dirty"] else ""),
                    str(d["file_count"]),
                    human_size(d["size_bytes"]),
                    (d["latest_snapshot"] or "-")[:12],
                    d["description"],
                ]
                for d in docs
            ]
        )

    out.emit(shapes.page(docs, len(docs) or 1, 0), human)


@click.command("info")
@click.argument("name")
@common_options
def info_cmd(out: Output, name: str) -> None:
    """Show a dataset (or NAME@REF): size, files, latest snapshot, tags.

    \b
    Example:
      ds info sales
    """
    doc = shapes.dataset(out.store.info(name))
    out.emit(
        doc,
        lambda: table(
            [[k, json.dumps(v) if isinstance(v, dict) else str(v)] for k, v in doc.items()]
        ),
    )


@click.command("summary")
@click.argument("name", required=False, metavar="[NAME[@REF]]")
@common_options
def summary_cmd(out: Output, name: str | None) -> None:
    """Files of a version by category and extension; without NAME, the whole store's
    totals (the REST API's /summary and /v1/stats).

    \b
    Example:
      ds summary sales@v1.0
      ds summary
    """
    from datastore import store_totals, version_summary

    doc = version_summary(out.store, name) if name else store_totals(out.store)

    def human() -> None:
        head = {k: v for k, v in doc.items() if not isinstance(v, dict)}
        table([[k, human_size(v) if k.endswith("bytes") else str(v)] for k, v in head.items()])
        for group in ("by_category", "by_extension"):
            rows = [
                [f"  {key or '(none)'}", str(v["count"]), human_size(v["size_bytes"])]
                for key, v in doc.get(group, {}).items()
            ]
            if rows:
                click.echo(group.replace("_", " ") + ":")
                table(rows)

    out.emit(doc, human)


@click.command("update")
@click.argument("name")
@click.option("-d", "--description", default=None, help="New description.")
@click.option("--metadata", default=None, help="A JSON object replacing the metadata.")
@common_options
def update_cmd(out: Output, name: str, description: str | None, metadata: str | None) -> None:
    """Change a dataset's description or metadata.

    \b
    Example:
      ds update sales -d "sales, EU only" --metadata '{"owner": "bi"}'
    """
    info = out.store.update_dataset(name, description, _json_object(metadata))
    out.emit(shapes.dataset(info), f"updated {name}")


@click.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
def delete_cmd(out: Output, name: str, yes: bool) -> None:
    """Delete a dataset and its snapshots (objects go at the next gc).

    \b
    Example:
      ds delete scratch --yes
    """
    out.store.dataset(name)
    if not yes:
        if out.as_json or not sys.stdin.isatty():  # a script: nobody to ask, nothing assumed
            raise InvalidRequest(
                f"deleting {name} cannot be undone; pass --yes to delete without a terminal"
            )
        click.confirm(f"delete dataset {name} and all its snapshots?", abort=True)
    out.store.delete_dataset(name)
    out.emit({"deleted": name}, f"deleted {name}")


def _json_object(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"--metadata is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("--metadata must be a JSON object")
    return value


COMMANDS = [init_cmd, create_cmd, list_cmd, info_cmd, summary_cmd, update_cmd, delete_cmd]
