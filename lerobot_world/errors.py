"""The one user-error type and exit code of every `lerobot-world` command.

A command raises `UserError` (or a subclass named after its concern) with one sentence naming the bad value
and what was expected; `run_command` prints it as `error: <sentence>` on stderr and exits with
`EXIT_USER_ERROR`. Anything else is a bug and keeps its traceback. Deliberately not a ValueError: draccus
replaces the message of a ValueError raised while it parses flags with a generic one.
"""

import sys
from collections.abc import Callable
from typing import NoReturn

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input (a flag, a path, a config file, a dataset that does not fit): one sentence, exit 2."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): a library's multi-line
    error folded into one sentence."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on stderr and exit with EXIT_USER_ERROR."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def run_command(fn: Callable[..., object], *args, **kwargs):
    """Call a command's body; a UserError ends the process with its one sentence and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        fail(str(e))


def parse_config(config_class, args: list[str]):
    """draccus.parse, with a flag value it cannot decode reported as a UserError (unknown flags already end
    in argparse's usage message and exit 2)."""
    import draccus
    from draccus.utils import DraccusException

    try:
        return draccus.parse(config_class=config_class, args=args)
    except DraccusException as e:
        raise UserError(f"bad flag value: {first_line(e)}") from None
