"""The project's split rule (`lerobot_world.splits`) is LeRobot's own `--dataset.eval_split` rule.

LeRobot's `make_train_eval_datasets` runs for real here; only the dataset it would open is replaced by a
recorder of the episode lists it asks for, so any change of LeRobot's rule (or of ours) fails this test.
"""

from types import SimpleNamespace

import pytest

from lerobot_world.splits import split_episodes

# Interleaved tasks with uneven counts: the order within a task and the per-task ceil both matter.
TASKS = ["pick", "place", "pick", "open", "pick", "place", "open", "pick", "place", "pick", "open"]


def _lerobot_split(monkeypatch, tasks: list[str], eval_split: float) -> tuple[list[int], list[int]]:
    from lerobot.datasets import factory

    full = SimpleNamespace(episodes=None, num_episodes=len(tasks), meta=SimpleNamespace(episodes={"tasks": [[t] for t in tasks]}))
    asked = []
    monkeypatch.setattr(factory, "make_dataset", lambda cfg: full)
    monkeypatch.setattr(factory, "resolve_delta_timestamps", lambda *a, **k: None)
    monkeypatch.setattr(factory, "LeRobotDataset", lambda *a, episodes, **k: asked.append(sorted(episodes)) or episodes)
    dataset = SimpleNamespace(eval_split=eval_split, repo_id="local/x", root=None, revision=None, video_backend=None,
                              image_transforms=SimpleNamespace(enable=False), use_imagenet_stats=False)
    factory.make_train_eval_datasets(SimpleNamespace(dataset=dataset, trainable_config=None, tolerance_s=1e-4))
    train, heldout = asked
    return train, heldout


@pytest.mark.parametrize("eval_split", [0.1, 0.25, 0.34, 0.5])
def test_split_is_lerobots_eval_split_rule(monkeypatch, eval_split):
    ours = split_episodes(dict(enumerate(TASKS)), eval_split)
    train, heldout = _lerobot_split(monkeypatch, TASKS, eval_split)
    assert (ours.train, ours.heldout) == (train, heldout)
    assert heldout and set(heldout).isdisjoint(train) and sorted(train + heldout) == list(range(len(TASKS)))
