"""`lerobot-world eval-offline`: checkpoints and their held-out episodes (`checkpoints`), per-checkpoint scoring
with the episode bootstrap (`scoring`), results.md (`results_md`), and the command that ties them (`evaluate`)."""
