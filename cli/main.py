"""The ``ds`` command: a click group over the datastore library.

Errors are turned into one-line messages and exit codes here and only here.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from datastore.errors import DatastoreError

from .errors import exit_code

COMMAND_MODULES = ("datasets", "files", "versions", "maintenance", "serve", "mount", "ingest")


class DsGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatastoreError as err:
            click.echo(f"ds: error: {err.message} [{err.code}]", err=True)
            sys.exit(exit_code(err))
        except OSError as err:
            click.echo(f"ds: error: {err}", err=True)
            sys.exit(1)


@click.group(cls=DsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ds")
def ds() -> None:
    """ds: versioned datasets as directories, snapshots by name, a REST API.

    \b
    Example:
      ds create sales && ds put sales ./data && ds snapshot sales --tag v1.0
    """


for _name in COMMAND_MODULES:
    for _cmd in importlib.import_module(f"cli.{_name}").COMMANDS:
        ds.add_command(_cmd)


def main() -> None:
    ds(prog_name="ds")
