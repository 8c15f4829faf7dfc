"""Mixed precision for evaluation, the way LeRobot's own `lerobot-eval` does it.

`lerobot-train --policy.use_amp=true` trains under Accelerate's autocast (bf16 on CPU, whose AVX-512
BF16 units make a step ~2.6x faster here); `lerobot-eval` then runs the policy under
`torch.autocast(device.type)` when the checkpoint's `use_amp` is set. eval-offline and eval-sim use
this one context so that a checkpoint is scored in the precision it was trained and deployed in. The
world tokenizer switches autocast off for itself (`WorldTokenizer.embed`), so tokens never change.
"""

from contextlib import nullcontext


def policy_autocast(policy_config, device):
    """`torch.autocast(device.type)` if the policy config has `use_amp` set, else a no-op context."""
    import torch

    if not getattr(policy_config, "use_amp", False):
        return nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type)
