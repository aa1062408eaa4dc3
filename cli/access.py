"""Access commands: API tokens (create, list, revoke) and dataset grants."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from datastore import InvalidRequest, shapes

from .common import Output, common_options, table

if TYPE_CHECKING:
    from datastore import Access


def _access(out: Output) -> Access:

    return out.store.access()


@click.group("token")
def token_group() -> None:
    """Create, list and revoke API tokens.

    \b
    Example:
      ds token create alice && ds token list && ds token revoke 3f2a9c0d1e4b5a69
    """


@token_group.command("create")
@click.argument("user")
@click.option("--admin", is_flag=True, help="A token that may do everything.")
@common_options
def token_create_cmd(out: Output, user: str, admin: bool) -> None:
    """Create a token for USER; its secret is printed once and stored only hashed.

    \b
    Example:
      ds token create alice --json
    """
    token = _access(out).create_token(user, admin)
    out.emit(
        shapes.token(token),
        f"{token.secret}\n(token {token.id} for {user}{', admin' if admin else ''};"
        " the secret is shown only now)",
    )


@token_group.command("list")
@common_options
def token_list_cmd(out: Output) -> None:
    """List tokens (never their secrets).

    \b
    Example:
      ds token list
    """
    docs = [shapes.token(t) for t in _access(out).tokens()]
    out.emit(
        shapes.page(docs, len(docs) or 1, 0),
        lambda: table(
            [["ID", "USER", "ADMIN", "CREATED"]]
            + [[d["id"], d["user"], "yes" if d["admin"] else "", d["created_at"]] for d in docs]
        ),
    )


@token_group.command("revoke")
@click.argument("token_id")
@common_options
def token_revoke_cmd(out: Output, token_id: str) -> None:
    """Revoke a token by its id.

    \b
    Example:
      ds token revoke 3f2a9c0d1e4b5a69
    """
    if not _access(out).revoke_token(token_id):
        raise InvalidRequest(f"no token {token_id!r}")
    out.emit({"id": token_id, "revoked": True}, f"revoked token {token_id}")


@click.command("grant")
@click.argument("name")
@click.argument("user")
@click.argument("permission", type=click.Choice(["read", "write", "admin"]))
@common_options
def grant_cmd(out: Output, name: str, user: str, permission: str) -> None:
    """Give USER read, write or admin on dataset NAME (replacing any grant it had).

    \b
    Example:
      ds grant sales alice read
    """
    created = _access(out).grant(name, user, permission)
    out.emit(
        {**shapes.grant(user, permission), "created": created},
        f"{user} may now {permission} {name}",
    )


@click.command("revoke")
@click.argument("name")
@click.argument("user")
@common_options
def revoke_cmd(out: Output, name: str, user: str) -> None:
    """Remove USER's grant on dataset NAME.

    \b
    Example:
      ds revoke sales alice
    """
    removed = _access(out).revoke(name, user)
    out.emit(
        {"principal": user, "dataset": name, "revoked": removed},
        f"revoked {user} on {name}" if removed else f"{user} had no grant on {name}",
    )


COMMANDS = [token_group, grant_cmd, revoke_cmd]
