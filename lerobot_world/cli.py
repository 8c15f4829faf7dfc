"""`lerobot-world <command> [--flags]`: one entry point, each command a draccus-configured module.

Commands are imported lazily so `lerobot-world --help` stays fast and a command's heavy imports
(torch models, LIBERO/mujoco) happen only when that command runs.
"""

import importlib
import sys

# command -> (module, one-line description). Each module exposes `main(argv: list[str] | None)`.
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenize": ("lerobot_world.tokenize_cli", "fit a world-token codebook and write a token table"),
    "eval-offline": ("lerobot_world.eval_offline", "held-out action/world metrics and world corruption"),
    "report": ("lerobot_world.report", "one REPORT.md from run directories"),
    "matrix": ("lerobot_world.matrix", "run variants x seeds x sweeps, resumable"),
    "split": ("lerobot_world.splits", "print the project's train/held-out episode split of a dataset"),
    "demos": ("eval_sim.demos", "record scripted-expert LIBERO demonstrations as a LeRobotDataset"),
    "eval-sim": ("eval_sim.evaluate", "closed-loop LIBERO evaluation of any LeRobot policy"),
    "token-agreement": ("eval_sim.token_agreement", "live vs table world tokens on replayed demos (same states)"),
    "libero-assets": ("eval_sim.libero_assets", "install/verify offline LIBERO assets and config"),
}


def _usage() -> str:
    lines = ["usage: lerobot-world <command> [--key=value ...]", "", "commands:"]
    width = max(map(len, COMMANDS)) + 1
    lines += [f"  {name:<{width}} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run `lerobot-world <command> --help` for a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.exit(f"error: unknown command {name!r}; expected one of: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    module.main(rest)


if __name__ == "__main__":
    main()
