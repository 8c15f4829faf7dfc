"""The one device rule of every command: `auto` (or no value) is CUDA when available, else CPU; an explicit
device is checked here, so a bad `--device` is one sentence instead of a torch error deep in a run."""

from lerobot_world.errors import UserError


def resolve_device(name=None, flag: str = "--device") -> str:
    """'auto' / None / '' -> 'cuda' if available else 'cpu'; 'cpu', 'cuda[:N]', 'mps' are checked and returned."""
    import torch

    name = "auto" if name is None or str(name) in ("", "auto") else str(name)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise UserError(f"{flag}={name} is not a torch device; expected auto, cpu, cuda[:N] or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{flag}={name} but CUDA is not available here; expected cpu or auto")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{flag}={name} but MPS is not available here; expected cpu or auto")
    return name
