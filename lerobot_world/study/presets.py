"""Policy presets: JSON files in ``configs/policy/`` that expand to a ``lerobot-train`` argument list.

A preset is plain data so the matrix runner, the README and ``reproduce.sh`` all agree on one source:

    {"description": "...",
     "policy":   {"type": "world_vla", "dim_model": 256, ...},      -> --policy.dim_model=256
     "train":    {"steps": 3000, "dataset.eval_split": 0.2, ...},   -> --steps=3000 --dataset.eval_split=0.2
     "tokenize": {"encoder": "pixel_pca", "vocab_size": 64},        -> lerobot-world tokenize flags
     "expected": {...}}                                              documentation only

Keys are checked against WorldVLAConfig / TrainPipelineConfig fields, so a typo fails here with the
bad key named instead of deep inside draccus (or, worse, after a long tokenization).
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_world.errors import UserError

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "policy"
SECTIONS = ("description", "policy", "train", "tokenize", "eval_sim", "expected")


class PresetError(UserError):
    """A bad preset or override; the message names the bad value."""


@dataclass
class Preset:
    name: str
    path: Path | None
    policy: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    tokenize: dict = field(default_factory=dict)
    eval_sim: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    description: str = ""

    def with_overrides(self, overrides: dict | None) -> "Preset":
        """A copy with ``{"policy.x": v, "steps": v, "tokenize.vocab_size": v}`` style overrides applied."""
        new = dataclasses.replace(
            self, policy=dict(self.policy), train=dict(self.train), tokenize=dict(self.tokenize)
        )
        for key, value in (overrides or {}).items():
            if key.startswith("policy."):
                new.policy[key[len("policy.") :]] = value
            elif key.startswith("tokenize."):
                new.tokenize[key[len("tokenize.") :]] = value
            else:
                new.train[key] = value
        _check_keys(new)
        return new


def resolve_preset_path(name_or_path: str | Path) -> Path:
    """``cpu_small`` -> configs/policy/cpu_small.json; an existing path is used as is."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = PRESET_DIR / f"{name_or_path}.json"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in PRESET_DIR.glob("*.json")) if PRESET_DIR.is_dir() else []
    raise PresetError(f"preset {str(name_or_path)!r} is neither a file nor one of the presets {known} in {PRESET_DIR}.")


def load_preset(name_or_path: str | Path, overrides: dict | None = None) -> Preset:
    path = resolve_preset_path(name_or_path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PresetError(f"preset {path} is not valid JSON ({e}).") from e
    if not isinstance(data, dict):
        raise PresetError(f"preset {path} must hold a JSON object with sections {list(SECTIONS)}.")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise PresetError(f"preset {path} has unknown section(s) {unknown}; expected only {list(SECTIONS)}.")
    preset = Preset(name=path.stem, path=path, **{k: data[k] for k in SECTIONS if k in data})
    if preset.policy.get("type", "world_vla") != "world_vla":
        raise PresetError(f"preset {path} has policy.type={preset.policy['type']!r}; expected 'world_vla'.")
    preset.policy.setdefault("type", "world_vla")
    _check_keys(preset)
    return preset.with_overrides(overrides)


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_keys(preset: Preset) -> None:
    """Every policy key must be a WorldVLAConfig field and every train key a TrainPipelineConfig path."""
    from lerobot.configs.train import TrainPipelineConfig

    from lerobot_world.policy.configuration_world_vla import WorldVLAConfig

    policy_fields = _field_names(WorldVLAConfig) | {"type"}
    for key in preset.policy:
        if key not in policy_fields:
            raise PresetError(f"preset {preset.name!r}: 'policy.{key}' is not a world_vla config field.")
    for key in preset.train:
        if key.startswith("policy.") or key in ("policy", "output_dir", "resume", "config_path"):
            raise PresetError(
                f"preset {preset.name!r}: train key {key!r} is set by the runner, not by a preset."
            )
        cls, parts = TrainPipelineConfig, key.split(".")
        for i, part in enumerate(parts):
            fields = {f.name: f for f in dataclasses.fields(cls)}
            if part not in fields:
                raise PresetError(f"preset {preset.name!r}: train key {key!r} is not a lerobot-train option.")
            if i < len(parts) - 1:
                sub = fields[part].type
                sub = sub if dataclasses.is_dataclass(sub) else _dataclass_in(sub)
                if sub is None:
                    raise PresetError(f"preset {preset.name!r}: train key {key!r} is not a lerobot-train option.")
                cls = sub


def _dataclass_in(tp):
    for arg in getattr(tp, "__args__", ()):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def format_value(value) -> str:
    """A value as draccus reads it from ``--key=value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def train_args(preset: Preset, overrides: dict | None = None) -> list[str]:
    """The ``lerobot-train`` flags of a preset (+ overrides), policy first, in a stable order."""
    p = preset.with_overrides(overrides) if overrides else preset
    args = [f"--policy.type={p.policy.get('type', 'world_vla')}"]
    args += [f"--policy.{k}={format_value(v)}" for k, v in p.policy.items() if k != "type"]
    args += [f"--{k}={format_value(v)}" for k, v in p.train.items()]
    return args


def tokenize_args(preset: Preset, overrides: dict | None = None) -> list[str]:
    """The ``lerobot-world tokenize`` flags of the preset's tokenize section (+ overrides)."""
    p = preset.with_overrides(overrides) if overrides else preset
    return [f"--{k}={format_value(v)}" for k, v in p.tokenize.items()]


def main(argv: list[str] | None = None) -> None:
    """``python -m lerobot_world.study.presets NAME [key=value ...]``: print the lerobot-train flags."""
    import shlex
    import sys

    from lerobot_world.errors import fail

    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        fail("usage: python -m lerobot_world.study.presets PRESET [key=value ...]")
    overrides = {}
    for item in argv[1:]:
        if "=" not in item:
            fail(f"override {item!r} is not key=value")
        k, v = item.split("=", 1)
        overrides[k.lstrip("-")] = json.loads(v) if v[:1] in "[{0123456789-" or v in ("true", "false", "null") else v
    try:
        print(shlex.join(["lerobot-train", *train_args(load_preset(argv[0], overrides))]))
    except PresetError as e:
        fail(str(e))


if __name__ == "__main__":
    main()
