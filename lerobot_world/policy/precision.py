"""Mixed precision for evaluation, the way LeRobot's own `lerobot-eval` does it.

`lerobot-train --policy.use_amp=true` trains under Accelerate's autocast (bf16 on CPU, whose AVX-512
BF16 units make a step ~2.6x faster here); `lerobot-eval` then runs the policy under
`torch.autocast(device.type)` when the checkpoint's `use_amp` is set. eval-offline and eval-sim use
this one context so that a checkpoint is scored in the precision it was trained and deployed in. The
world tokenizer switches autocast off for itself (`WorldTokenizer.embed`), so tokens never change.
"""

import logging
from contextlib import nullcontext


def policy_autocast(policy_config, device):
    """`torch.autocast(device.type)` if the policy config has `use_amp` set, else a no-op context."""
    import torch

    if not getattr(policy_config, "use_amp", False):
        return nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type)


def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX-512 BF16 or AMX); without them bf16 autocast falls back
    to a path many times slower than fp32."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def warn_if_cpu_bf16_is_slow(policy_config) -> None:
    """bf16 autocast on a CPU without oneDNN bf16 kernels (no AVX-512 BF16 / AMX, e.g. AVX2 only) falls back
    to a slow convolution path: a world_vla step was measured 3.3x slower than fp32 there. Say so once,
    where the choice is made, instead of letting a study run silently take three times as long."""
    import torch

    if not getattr(policy_config, "use_amp", False) or torch.device(policy_config.device or "cpu").type != "cpu":
        return
    if not cpu_has_bf16_kernels():
        logging.warning(
            "world_vla: use_amp=true on a CPU without bf16 kernels (torch.ops.mkldnn._is_mkldnn_bf16_supported() "
            "is False; CPU capability %s): bf16 autocast runs several times slower than fp32 here; "
            "set --policy.use_amp=false on this machine.",
            torch.backends.cpu.get_cpu_capability(),
        )
