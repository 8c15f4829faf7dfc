"""Training-step time of world_vla A and C relative to LeRobot's ACT at the same trunk and batch.

Prints one table from one run (ratios measured side by side, rounds interleaved so machine noise
hits every model alike). Targets: A/ACT <= 1.05 and C/ACT <= 1.15.

    .venv/bin/python scripts/bench_policy_step.py            # LIBERO-like CPU size (96 px, two cameras)
    .venv/bin/python scripts/bench_policy_step.py --quick    # tiny, seconds (used by the tests)
    .venv/bin/python scripts/bench_policy_step.py --amp --profile   # world_vla under bf16 autocast; op profile
    .venv/bin/python scripts/bench_policy_step.py --amp --profile --output=F.json   # the same, kept as JSON

`--amp` runs the world_vla models' forward under `torch.autocast("cpu", dtype=torch.bfloat16)` (what
`--policy.use_amp=true` makes lerobot-train do) while ACT stays fp32. `--profile` then profiles a few
steps of world_vla C with torch.profiler and prints the operators that bound the step.
The full lerobot-train step including data loading is measured by scripts/bench_train_step.py.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(policy_type: str, meta, trunk: dict, table: Path | None, variant: str | None):
    from lerobot.policies.factory import make_policy, make_policy_config

    import lerobot_world.policy.configuration_world_vla  # noqa: F401  (registers world_vla)

    kwargs = dict(trunk, device="cpu", push_to_hub=False)
    if policy_type == "act":
        kwargs["pretrained_backbone_weights"] = None
    else:
        kwargs["variant"] = variant
        if variant != "A":
            kwargs["world_tokens"] = str(table)
    policy = make_policy(make_policy_config(policy_type, **kwargs), ds_meta=meta)
    policy.train()
    return policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps_per_round", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--amp", action="store_true", help="world_vla under bf16 autocast (ACT stays fp32)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of world_vla C's step")
    parser.add_argument("--output", type=Path, default=None, help="also write the numbers (and profile) as JSON")
    args = parser.parse_args()

    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import make_pre_post_processors

    from lerobot_world.cli import main as cli
    from lerobot_world.toy_dataset import make_toy_dataset

    if args.quick:
        args.rounds, args.steps_per_round, args.batch_size, args.image_size = 2, 1, 2, 32
        trunk = dict(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=2, n_vae_encoder_layers=1,
                     chunk_size=10, n_action_steps=10)
    else:
        trunk = dict(dim_model=256, n_heads=8, dim_feedforward=1024, n_encoder_layers=2, n_decoder_layers=2, n_vae_encoder_layers=2,
                     chunk_size=20, n_action_steps=20)
    world = dict(future_offset=8 if not args.quick else 3, world_context=4 if not args.quick else 2)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "toy"
        ds = make_toy_dataset(root, episodes_per_task=2, image_size=args.image_size)
        table = Path(tmp) / "table"
        cli(["tokenize", "--dataset.repo_id=local/toy_libero", f"--dataset.root={root}", "--vocab_size=16",
             "--eval_split=0.0", f"--output_dir={table}"])
        chunk = trunk["chunk_size"]
        ds = LeRobotDataset("local/toy_libero", root=root,
                            delta_timestamps={"action": [i / ds.fps for i in range(chunk)]})
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(0))
        raw = next(iter(loader))

        models = {
            "ACT": build("act", ds.meta, trunk, None, None),
            "world_vla A": build("world_vla", ds.meta, trunk, table, "A"),
            "world_vla C": build("world_vla", ds.meta, {**trunk, **world}, table, "C"),
        }
        batches, optims = {}, {}
        for name, policy in models.items():
            pre, _ = make_pre_post_processors(policy.config, dataset_stats=ds.meta.stats)
            batches[name] = pre(dict(raw))
            optims[name] = torch.optim.AdamW(policy.parameters(), lr=1e-4)

        def step(name):
            amp = args.amp and name != "ACT"
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss, _ = models[name].forward(batches[name])
            loss.backward()
            optims[name].step()
            optims[name].zero_grad()

        for name in models:  # warm-up
            step(name)
        times = {name: [] for name in models}
        for _ in range(args.rounds):
            for name in models:
                start = time.perf_counter()
                for _ in range(args.steps_per_round):
                    step(name)
                times[name].append((time.perf_counter() - start) / args.steps_per_round)

        profile_record = None
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            n_profiled = max(2, args.steps_per_round)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(n_profiled):
                    step("world_vla C")
            averages = prof.key_averages()
            print(averages.table(sort_by="self_cpu_time_total", row_limit=20))
            profile_record = profile_summary(averages, n_profiled)
            print(f"\nworld_vla C step by operator group (share of self CPU time over {n_profiled} steps):")
            for group, share in profile_record["groups"].items():
                print(f"  {group:<34} {share:6.1%}")

    base = statistics.median(times["ACT"])
    # bf16 autocast is only fast where oneDNN has bf16 kernels (AVX-512 BF16 / AMX); elsewhere (e.g. an
    # AVX2-only CPU) convolutions fall back to aten::_slow_conv2d and bf16 is several times slower.
    print(f"\nCPU capability {torch.backends.cpu.get_cpu_capability()}, oneDNN bf16 kernels: "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print(f"\ntraining step, batch {args.batch_size}, {args.image_size}px x 2 cameras, trunk {trunk}, "
          f"C: K={world['future_offset']} context={world['world_context']}; world_vla bf16 autocast: {args.amp}; "
          f"median of {args.rounds} rounds")
    print(f"{'model':<14} {'s/step':>9} {'/ ACT':>7} {'params':>10}")
    record = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": machine(), "trunk": trunk, "world": world, "models": {}}
    for name, policy in models.items():
        median = statistics.median(times[name])
        n_params = sum(p.numel() for p in policy.parameters() if p.requires_grad)
        print(f"{name:<14} {median:>9.4f} {median / base:>7.3f} {n_params:>10,}")
        record["models"][name] = {"step_s": median, "vs_act": median / base, "rounds_s": times[name],
                                  "params": n_params, "bf16_autocast": args.amp and name != "ACT"}
    if profile_record is not None:
        record["profile_world_vla_C"] = profile_record
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=1) + "\n")
        print(f"\nwritten to {args.output}")


# Operator groups for the profile summary, first match wins (self CPU time, so no op is counted twice).
OP_GROUPS = (
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d")),
    ("matmul / linear / attention", ("addmm", "::mm", "bmm", "matmul", "linear", "baddbmm", "scaled_dot_product")),
    ("optimizer (AdamW lerp/addcdiv/addcmul/sqrt)", ("_foreach", "optimizer", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("copies and dtype casts", ("copy_", "_to_copy", "::to")),
    ("dropout (bernoulli)", ("bernoulli", "dropout")),
    ("batch / layer norm", ("batch_norm", "layer_norm")),
)


def profile_summary(averages, n_steps: int) -> dict:
    """Self CPU time of the profiled steps by operator group and the top operators (what bounds the step)."""
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    groups = {name: 0.0 for name, _ in OP_GROUPS}
    groups["other"] = 0.0
    for e in averages:
        key = e.key.lower()
        group = next((name for name, pats in OP_GROUPS if any(p in key for p in pats)), "other")
        groups[group] += e.self_cpu_time_total / total
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:25]
    return {"steps": n_steps, "self_cpu_s_per_step": total / 1e6 / n_steps,
            "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
            "top_ops": [{"op": e.key, "self_cpu_share": e.self_cpu_time_total / total,
                         "calls_per_step": e.count / n_steps} for e in top]}


def machine() -> dict:
    from quickstart import cpu_name  # a sibling script (scripts/ is on sys.path when a script runs)

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}


if __name__ == "__main__":
    main()
