"""`lerobot-world <command> [--flags]`: one entry point, each command a module with `main(argv)`.

The commands are the `lerobot_world.commands` entry points of the installed distribution (pyproject.toml),
so this package names none of them: `eval_sim` adds its own (demos, eval-sim, ...) without `lerobot_world`
ever importing it. A command's module is imported only when it runs, so `lerobot-world --help` stays fast and
the heavy imports (torch models, LIBERO/mujoco) happen only where they are needed. The one-line description
in the usage text is the first sentence of the module's docstring, read without importing the module.
"""

import ast
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

from lerobot_world.errors import fail, run_command

GROUP = "lerobot_world.commands"


def commands() -> dict[str, importlib.metadata.EntryPoint]:
    """Command name -> its entry point, in the order pyproject.toml lists them."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def describe(module: str) -> str:
    """The first sentence of a module's docstring, without the "`lerobot-world NAME ...`: " prefix."""
    try:
        spec = importlib.util.find_spec(module)
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    except (ImportError, AttributeError, OSError, SyntaxError, TypeError):
        return ""
    first = " ".join(doc.split("\n\n")[0].split())
    first = re.sub(r"^`[^`]*`:\s*", "", first)
    sentence = re.split(r"(?<=[.?!])\s", first)[0].rstrip(".")
    return sentence[:1].lower() + sentence[1:]


def _usage(found: dict) -> str:
    lines = ["usage: lerobot-world <command> [--key=value ...]", "", "commands:"]
    width = max(map(len, found), default=0) + 1
    lines += [f"  {name:<{width}} {describe(ep.module)}" for name, ep in found.items()]
    lines += ["", "Run `lerobot-world <command> --help` for a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    found = commands()
    if not found:
        fail(f"no commands are registered under the entry-point group {GROUP!r}; install the project "
             "(`make setup`, or `pip install -e .`) so its pyproject.toml entry points exist")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(found))
        return
    name, rest = argv[0], argv[1:]
    if name not in found:
        fail(f"unknown command {name!r}; expected one of: {', '.join(found)}")
    run_command(found[name].load(), rest)


if __name__ == "__main__":
    main()
