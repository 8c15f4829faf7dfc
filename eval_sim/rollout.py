"""eval-sim's rollout loop: one task's episodes through its vector env, one record per episode.

Written here rather than taken from ``lerobot_eval.rollout`` for the per-step hooks the study needs
(chunk starts, world tokens, goal predicates, fixed init states, per-phase timing; see evaluate.py).
"""

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval_sim import metrics
from eval_sim.errors import EvalSimError
from eval_sim.libero_env import set_env_attr, step_successes
from eval_sim.policies import PolicyRunner, StepContext
from lerobot_world.vocabulary import AGENT_KEY, WRIST_KEY


@dataclass
class Timing:
    """Seconds spent per phase of the rollout loop, summed over all steps."""

    env_s: float = 0.0  # vec.step: physics + camera rendering
    policy_s: float = 0.0  # policy preprocessor + select_action + postprocessors
    harness_s: float = 0.0  # everything else: observation preprocessing, bookkeeping, video frames
    reset_s: float = 0.0
    env_steps: int = 0  # sub-env steps of episodes still running
    vec_steps: int = 0

    def as_dict(self) -> dict:
        loop = self.env_s + self.policy_s + self.harness_s
        d = dataclasses.asdict(self)
        d.update(
            env_steps_per_s=self.env_steps / loop if loop else None,
            env_steps_per_s_without_policy=self.env_steps / (loop - self.policy_s) if loop - self.policy_s > 0 else None,
            env_only_steps_per_s=self.env_steps / self.env_s if self.env_s else None,
            harness_overhead_vs_env=self.harness_s / self.env_s if self.env_s else None,
        )
        return d


def _episode_lines(ep_label: str, step: int, max_steps: int, success: bool, done: bool, world: tuple | None):
    white, green, red, grey = (255, 255, 255), (90, 255, 90), (255, 90, 90), (200, 200, 200)
    status = ("SUCCESS", green) if success else (("FAIL", red) if done else ("running", grey))
    lines = [(ep_label, white), (f"step {step}/{max_steps}", white), status]
    if world is not None:
        obs_tok, pred_tok, k = world
        lines.append((f"w_obs {obs_tok}", grey))
        if pred_tok is not None:
            lines.append((f"w_pred {pred_tok} (k={k})", green if pred_tok == obs_tok else red))
    return lines


def run_task(
    vec,
    runner: PolicyRunner,
    *,
    suite: str,
    task_id: int,
    n_episodes: int,
    max_steps: int,
    seed: int,
    init_state_start: int,
    videos_dir: Path | None,
    max_videos: int,
    fps: int,
    timing: Timing,
    progress=None,
) -> list[dict]:
    """Run ``n_episodes`` of one task through its vector env; return one record per episode."""
    from lerobot.envs import preprocess_observation
    from lerobot.envs.utils import NEW_ROLLOUT_OPTION
    from lerobot.utils.utils import inside_slurm
    from tqdm import trange

    from eval_sim.video import VideoWriter

    B = vec.num_envs
    is_sync = hasattr(vec, "envs")
    episodes: list[dict] = []
    task_text = None
    for first in range(0, n_episodes, B):
        ep_ids = list(range(first, first + B))
        init_ids = [init_state_start + e for e in ep_ids]
        t0 = time.perf_counter()
        set_env_attr(vec, "init_state_id", init_ids)
        runner.reset()
        raw_obs, _ = vec.reset(seed=[seed + e for e in ep_ids], options={NEW_ROLLOUT_OPTION: True})
        tasks = list(vec.call("task_description"))
        task_text = tasks[0]
        sub_envs = [e.unwrapped for e in vec.envs] if (is_sync and runner.needs_env) else None
        timing.reset_s += time.perf_counter() - t0

        done = np.zeros(B, dtype=bool)
        success = np.zeros(B, dtype=bool)
        length = np.full(B, max_steps, dtype=int)
        actions, chunk_starts, observed = [], [], []
        predicted: dict[int, np.ndarray] = {}
        predicted_top5: dict[int, np.ndarray] = {}  # step -> (B, K, 5), when the policy exposes top-5
        writers = {
            i: VideoWriter(videos_dir / f"{suite}_task{task_id:02d}_ep{e:03d}.mp4", fps)
            for i, e in enumerate(ep_ids)
            if videos_dir is not None and e < min(n_episodes, max_videos)
        }
        cur_pred: dict[int, tuple[int, np.ndarray]] = {}  # env -> (step it was predicted at, tokens [K])

        def frames(observation, step, final=False):
            for i, w in writers.items():
                world = None
                if runner.horizon and observed:
                    o = int(observed[-1][i]) if not final else None
                    p = k = None
                    if i in cur_pred and not final:
                        t_p, toks = cur_pred[i]
                        k = step - t_p
                        p = int(toks[k - 1]) if 1 <= k <= len(toks) else None
                    world = (o, p, k) if o is not None else None
                label = f"{suite} t{task_id} ep{ep_ids[i]} init{init_ids[i]}"
                lines = _episode_lines(label, min(step, length[i]), max_steps, success[i], done[i], world)
                # tensors of this step's observation: LeRobot's processors never modify them in place
                img2 = observation[WRIST_KEY][i] if WRIST_KEY in observation else None
                w.append_views(observation[AGENT_KEY][i], img2, lines)

        steps = trange(max_steps, desc=f"{suite} task {task_id} episodes {first}-{first + B - 1}", leave=False, disable=inside_slurm())
        step = 0
        try:
            while step < max_steps and not done.all():
                t0 = time.perf_counter()
                observation = preprocess_observation(raw_obs)
                observation["task"] = tasks
                observation = runner.env_pre(observation)
                ctx = StepContext(step=step, envs=sub_envs, raw_observation=raw_obs, task=tasks, done=done.copy())
                t1 = time.perf_counter()
                action, chunk, obs_tok, pred_tok = runner.act(observation, ctx)
                t2 = time.perf_counter()
                if action.shape != (B, 7):
                    raise EvalSimError(f"the policy returned actions of shape {action.shape}: expected ({B}, 7).")
                actions.append(action)
                chunk_starts.append(chunk)
                if obs_tok is not None:
                    observed.append(obs_tok)
                if writers:
                    frames(observation, step)
                    # finished episodes got their final frame from this observation: close them now
                    for i in [i for i in writers if done[i]]:
                        writers.pop(i).close()
                if pred_tok is not None:
                    for i in range(B):
                        cur_pred[i] = (step, pred_tok[i])
                    predicted[step] = pred_tok
                    top5 = getattr(runner, "last_predicted_top5", None)
                    if top5 is not None:
                        predicted_top5[step] = top5
                t3 = time.perf_counter()
                raw_obs, _reward, terminated, truncated, info = vec.step(action)
                t4 = time.perf_counter()
                ended = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
                succ_now = step_successes(info, B)
                timing.env_steps += int((~done).sum())
                timing.vec_steps += 1
                new = ended & ~done
                success[new] = succ_now[new]
                length[new] = step + 1
                done |= ended
                step += 1
                steps.update()
                t5 = time.perf_counter()
                timing.harness_s += (t1 - t0) + (t3 - t2) + (t5 - t4)
                timing.policy_s += t2 - t1
                timing.env_s += t4 - t3
            steps.close()
            t0 = time.perf_counter()
            done[:] = True
            if writers:  # last observation of the episodes still recording
                observation = runner.env_pre({**preprocess_observation(raw_obs), "task": tasks})
                frames(observation, step, final=True)
                for i in list(writers):
                    writers.pop(i).close()
            timing.harness_s += time.perf_counter() - t0
        finally:
            for w in writers.values():  # only after an error
                w.close()

        goal = list(vec.call("eval_sim_goal_state"))
        acts = np.stack(actions, axis=1) if actions else np.zeros((B, 0, 7), np.float32)  # (B, T, 7)
        obs_arr = np.stack(observed, axis=1) if observed else None  # (B, T)
        for i, e in enumerate(ep_ids):
            if e >= n_episodes:
                continue  # padding env of the last batch
            L = int(length[i])
            a = acts[i, :L]
            cs = chunk_starts[:L]
            rec = {
                "suite": suite,
                "task_id": task_id,
                "task": task_text,
                "episode_index": e,
                "init_state_id": init_ids[i],
                "seed": seed + e,
                "success": bool(success[i]),
                "length": L,
                "goal_predicates": [{"predicate": p, "satisfied": s} for p, s in goal[i]],
                "goal_fraction": (sum(s for _, s in goal[i]) / len(goal[i])) if goal[i] else None,
                "jerk": _nan_to_none(metrics.action_jerk(a)),
                "chunk_jump": None,
                "world": None,
                "video": None,
            }
            if cs and all(c is not None for c in cs):
                cj = metrics.chunk_boundary_jumps(a, [bool(c) for c in cs])
                rec["chunk_jump"] = {k: _nan_to_none(v) for k, v in cj.items()}
                rec["n_chunks"] = int(sum(bool(c) for c in cs))
            if runner.horizon and obs_arr is not None:
                preds = {t: p[i] for t, p in predicted.items() if t < L}
                # top-5 only when every prediction of the episode came with it (else no partial counts)
                top5 = {t: predicted_top5[t][i] for t in preds} if predicted_top5 and all(t in predicted_top5 for t in preds) else None
                d = metrics.world_accuracy_details(obs_arr[i, :L], preds, runner.horizon, top5)
                rec["world"] = {
                    "correct": d["correct"].tolist(),
                    "copy_correct": d["copy_correct"].tolist(),  # copy baseline hits on the same pairs
                    "count": d["count"].tolist(),
                    "changed_count": d["changed_count"].tolist(),  # pairs with observed[t+k] != observed[t]
                    "changed_correct": d["changed_correct"].tolist(),
                    "top5_correct": None if d["top5_correct"] is None else d["top5_correct"].tolist(),
                    "changed_top5_correct": None if d["changed_top5_correct"] is None else d["changed_top5_correct"].tolist(),
                }
            if videos_dir is not None and e < max_videos:
                rec["video"] = f"videos/{suite}_task{task_id:02d}_ep{e:03d}.mp4"
            episodes.append(rec)
        if progress is not None:
            progress.update(min(B, n_episodes - first))
            n_s = sum(r["success"] for r in episodes)
            progress.set_postfix(task=f"{suite}/{task_id}", success=f"{n_s}/{len(episodes)}")
    return episodes


def _nan_to_none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x
