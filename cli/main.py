"""The ``ds`` command: a click group over the datastore library.

Errors are turned into one-line messages and exit codes here and only here.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from datastore import DatastoreError, InvalidRequest, errors

from . import (
    access,
    analytics,
    datasets,
    files,
    ingest,
    maintenance,
    mount,
    serve,
    versions,
)
from .common import JSON_KEY
from .errors import exit_code

# one module per command family, each with its COMMANDS, in the order help lists them
COMMAND_MODULES = (datasets, files, versions, maintenance, access, serve, mount, ingest, analytics)


class DsGroup(click.Group):
    """Every failure of every command is reported here, in one style: one line
    ``ds: error: MESSAGE [code]`` on stderr, and with ``--json`` also the REST API's
    ``{"error": {"code", "message"}}`` document on stdout."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # known before a subcommand parses its own flags, so a bad flag gets JSON too
        ctx.meta[JSON_KEY] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatastoreError as err:
            _fail(ctx, err)
        except BrokenPipeError:
            _reader_left()
        except OSError as err:
            _fail(ctx, errors.storage_error(err) or DatastoreError(str(err)))
        except click.UsageError as err:
            _fail(ctx, InvalidRequest(err.format_message()))
        except click.ClickException as err:
            _fail(ctx, DatastoreError(err.format_message()))


def _fail(ctx: click.Context, err: DatastoreError) -> None:
    if ctx.meta.get(JSON_KEY):
        click.echo(json.dumps(err.to_dict(), indent=2))
    click.echo(f"ds: error: {err.message} [{err.code}]", err=True)
    sys.exit(exit_code(err))


@click.group(cls=DsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ds")
def ds() -> None:
    """ds: versioned datasets as directories, snapshots by name, a REST API.

    \b
    Example:
      ds create sales && ds put sales ./data && ds snapshot sales --tag v1.0
    """


for _module in COMMAND_MODULES:
    for _cmd in _module.COMMANDS:
        ds.add_command(_cmd)


def _reader_left() -> None:
    """The reader of our output stopped early (``ds ls -R | head``): not an error. What is
    still buffered goes nowhere, so the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(0)


def main() -> None:
    ds(prog_name="ds")
