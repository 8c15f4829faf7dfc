"""`lerobot-world token-agreement` (command: ``eval_sim.token_agreement.command``): do live world tokens equal the table's tokens for the same states?

    lerobot-world token-agreement --dataset.repo_id=local/libero_demo --dataset.root=data/libero_demo \\
        --world_tokens=tables/libero_demo_v32 [--episodes=[0,1]] [--output_dir=DIR] \\
        [--policy.path=CHECKPOINT [--device=cpu]]

A world-token table (``lerobot-world tokenize``) is computed from frames *decoded* from the
dataset (for video datasets: lossy h264/yuv420p); in closed loop the policy tokenizes the *live*
rendered frame. This command measures whether the two agree for the same simulator states.

For each chosen episode of a dataset recorded by ``lerobot-world demos`` (its ``results.json``
gives the suite, image size, init mode, and per episode the task, LIBERO init state and seed), it
rebuilds the env exactly as the recorder did (:class:`eval_sim.demos.LeRobotLiberoRecorder`:
LeRobot's ``LiberoEnv`` -> ``preprocess_observation`` -> LIBERO env processor, which is also what a
policy sees in ``lerobot-world eval-sim``), replays the dataset's recorded actions step by step,
and for every frame compares:

- the live token (the table's own tokenizer on the live ``image_key`` frame) with the table token;
- the decoded dataset frame re-tokenized with the same tokenizer (must equal the table: a check
  that the table belongs to these frames and that decoding is deterministic);
- max |live ``observation.state`` - recorded ``observation.state``| (does the replay reproduce the
  recorded states?) and mean |live pixel - decoded pixel| of the tokenized camera (0..255 units).

With ``--policy.path=CHECKPOINT`` (a world_vla checkpoint that predicts world tokens: variant B, C
or C_no_world_input, trained with this very table), the same replay also feeds every live observation
to the policy through its own saved preprocessor and ``select_action`` (loaded with
``eval_sim.policies.load_policy``, exactly as ``lerobot-world eval-sim`` does) while the *recorded*
actions are executed; its actions are discarded. Its world predictions are scored as in eval-sim (the
token predicted at step t for t+k vs the token observed at t+k, beside the copy baseline on the same
pairs): world prediction along the demonstrated states, which separates the world model's accuracy
from the policy's own trajectories in eval-sim.

Writes ``results.json`` and ``results.md`` (to a temp dir, then moved into ``--output_dir``) and
prints a one-paragraph summary. Bad input is one sentence on stderr and exit code 2, nothing written.
"""
