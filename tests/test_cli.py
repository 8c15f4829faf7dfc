"""Every `lerobot-world` command answers bad input the same way: one sentence `error: ...` on stderr, exit 2.

Each case is a real invocation through the installed entry point's dispatcher (`lerobot_world.cli.main`, what
the `lerobot-world` script calls), with an input that is wrong before any work starts; nothing is written.
"""

import pytest

from lerobot_world.cli import commands, describe
from lerobot_world.cli import main as cli

NOPE = "/nonexistent/lerobot-world-test"

# command -> (argv after the command name, a phrase the sentence must contain)
BAD_INPUT = {
    "tokenize": (["--dataset.repo_id=local/x", f"--dataset.root={NOPE}", "--output_dir=OUT"], "is not a LeRobot dataset"),
    "eval-offline": ([f"--policy.path={NOPE}", "--output_dir=OUT"], NOPE),
    "report": ([], "give at least one run or matrix directory"),
    "matrix": ([f"--config={NOPE}.yaml"], "does not exist"),
    "split": (["--dataset.repo_id=local/x", f"--dataset.root={NOPE}"], "is not a LeRobot dataset"),
    "demos": (["--suite=libero_1000", "--output_dir=OUT"], "is not a LIBERO suite"),
    "eval-sim": ([f"--policy.path={NOPE}", "--output_dir=OUT"], "does not exist"),
    "token-agreement": ([f"--dataset.root={NOPE}", "--output_dir=OUT"], "--world_tokens is required"),
    "libero-assets": (["verify", f"--assets_dir={NOPE}"], "does not exist"),
}


def _run(capsys, argv) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli(argv)
    return e.value.code, capsys.readouterr().err


def test_every_registered_command_has_a_bad_input_case():
    assert set(commands()) == set(BAD_INPUT), "a new command needs its bad-input case here"
    assert all(describe(ep.module) for ep in commands().values()), "every command module needs a docstring"


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_is_one_sentence_and_exit_2(name, capsys, tmp_path):
    argv, phrase = BAD_INPUT[name]
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    code, err = _run(capsys, [name, *argv])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{name}: exit {code}, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], f"{name}: {err!r}"
    assert not (tmp_path / "out").exists(), f"{name} wrote output on bad input"


def test_bad_flag_value_and_unknown_command_exit_2(capsys):
    code, err = _run(capsys, ["tokenize", "--vocab_size=many"])
    assert code == 2 and err.strip().startswith("error: bad flag value") and "many" in err and "\n" not in err.strip()
    code, err = _run(capsys, ["no-such-command"])
    assert code == 2 and "unknown command 'no-such-command'" in err and "eval-sim" in err
