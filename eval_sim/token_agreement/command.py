"""`lerobot-world token-agreement`: replay the chosen demos, compare live and table tokens, write results.

See the package docstring (``eval_sim.token_agreement``) for what is measured and why.
"""

import dataclasses
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

from eval_sim.token_agreement.compare import pool_world, summarize
from eval_sim.token_agreement.config import POLICY_NOTE, TokenAgreementConfig
from eval_sim.token_agreement.inputs import validate
from eval_sim.token_agreement.replay import load_observer, replay_episode, training_roles
from eval_sim.token_agreement.results_md import fmt4, render_markdown, summary_paragraph
from lerobot_world.errors import parse_config, run_command
from lerobot_world.outputs import staged_dir


def run(cfg: TokenAgreementConfig, argv: list[str] | None = None) -> dict:
    inp = validate(cfg)
    argv = sys.argv[1:] if argv is None else argv
    from eval_sim.demos import LeRobotLiberoRecorder
    from eval_sim.libero_assets import ensure_libero_ready

    ensure_libero_ready()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    t0 = time.perf_counter()
    dcfg = inp.demos["config"]
    image_key = inp.table.meta["image_key"]
    tokenizer = inp.table.build_tokenizer().eval()
    observer = load_observer(cfg, inp, tokenizer) if inp.policy_cfg is not None else None
    roles = training_roles(Path(observer.loaded.path), inp.meta) if observer is not None else None
    dataset = LeRobotDataset(cfg.dataset.repo_id, root=Path(cfg.dataset.root).expanduser(),
                             video_backend=cfg.video_backend, return_uint8=True)
    results_eps = []
    recorders: dict[int, LeRobotLiberoRecorder] = {}
    try:
        for ep in inp.episodes:
            rec = recorders.get(ep["task_id"])
            if rec is None:
                rec = recorders[ep["task_id"]] = LeRobotLiberoRecorder(
                    dcfg["suite"], ep["task_id"], int(dcfg["image_size"]), dcfg["init"], dcfg.get("max_steps"))
            te = time.perf_counter()
            tab = inp.table.tokens[ep["from"]:ep["to"]].numpy()
            r = replay_episode(rec, ep, dataset, tokenizer, image_key, tab, observer=observer)
            if observer is not None:
                r["policy"]["split"] = None if roles is None else roles.get(ep["episode_index"])
            results_eps.append({k: ep[k] for k in ("episode_index", "task_id", "init_id", "seed", "task")}
                               | r | {"seconds": round(time.perf_counter() - te, 1)})
            pol = "" if observer is None else (
                f"; policy world accuracy {fmt4(r['policy']['mean'], 3)} (copy {fmt4(r['policy']['copy_mean'], 3)}, "
                f"mean over k)")
            print(f"episode {ep['episode_index']}: {r['agree']}/{r['frames']} tokens agree, max |Δstate| "
                  f"{r['state_max_abs_err']:.3g}, mean |Δpixel| {r['pixel_mean_abs_diff']:.3f}{pol}", flush=True)
    finally:
        for rec in recorders.values():
            rec.close()
    tm = inp.table.meta
    result = {
        "command": "lerobot-world token-agreement " + shlex.join(argv),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
        "dataset": {"repo_id": cfg.dataset.repo_id, "root": str(Path(cfg.dataset.root).expanduser().resolve()),
                    "total_episodes": int(inp.meta.total_episodes), "total_frames": int(inp.meta.total_frames)},
        "source": {"suite": dcfg["suite"], "image_size": int(dcfg["image_size"]), "init": dcfg["init"],
                   "use_videos": bool(dcfg.get("use_videos", True)), "max_steps": dcfg.get("max_steps"),
                   "demos_command": inp.demos.get("command")},
        "table": {"path": str(Path(cfg.world_tokens).resolve()), "encoder": tm.get("encoder"),
                  "vocab_size": int(tm["vocab_size"]), "fingerprint": tm.get("fingerprint")},
        "image_key": image_key,
        "policy": None,
        "overall": summarize(results_eps),
        "episodes": results_eps,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if observer is not None:
        c = observer.policy.config
        result["policy"] = {
            "path": observer.loaded.path, "type": c.type, "variant": c.variant, "future_offset": int(c.future_offset),
            "chunk_size": int(c.chunk_size), "n_action_steps": int(c.n_action_steps),
            "temporal_ensemble_coeff": c.temporal_ensemble_coeff, "world_context": int(c.world_context),
            "device": str(c.device), "world_table_fingerprint": c.world_table_fingerprint, "note": POLICY_NOTE,
        }
        result["overall"]["policy"] = pool_world([e["policy"] for e in results_eps])
    out = inp.out
    result["output_dir"] = str(out)
    with staged_dir(out) as staged:
        (staged.path / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (staged.path / "results.md").write_text(render_markdown(result))
    print("\n" + summary_paragraph(result))
    print(f"results in {out}/results.json and results.md")
    return result


def main(argv: list[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: run(parse_config(TokenAgreementConfig, argv), argv))


if __name__ == "__main__":
    main()
