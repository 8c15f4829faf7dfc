"""`lerobot-world decode-videos`: copy a video LeRobotDataset into image storage, every frame decoded once.

Why: on a 2-core machine `lerobot-train` decodes h264 in its loader workers for every sample it draws,
and that decoder competes with the trainer for the same two cores (DESIGN §6, issue "CPU throughput").
An image-storage LeRobotDataset keeps each frame as a PNG inside the parquet files; reading one back is
a small PNG decode, so the loader needs a fraction of a core and `lerobot-train` stays the trainer,
reading an ordinary LeRobotDataset.

What is kept, so training on the copy is training on the source:
- the same episodes, frames, tasks, and every non-camera column, in the same order;
- camera frames bit-identical to what LeRobot's video decoder returns for the source (PNG is lossless;
  the tests compare ``copy[i][key] == source[i][key]``);
- the source's ``meta/stats.json`` (LeRobot would recompute image stats from the decoded frames, which
  differ in the last digits from the source's; copying them makes normalisation identical).

The copy is written to a temp dir beside ``--output_dir`` and moved into place; ``decoded_from.json`` in
it names the source and its fingerprint, and a rerun with the same source is a no-op.

Example:
    lerobot-world decode-videos --dataset.repo_id=local/libero10_demos_96 \\
        --dataset.root=../shared/data/libero10_demos_96 --output_dir=~/.cache/lerobot-world/libero10_demos_96_images
"""

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_world.splits import DatasetArgs

MARKER = "decoded_from.json"
# LeRobot adds these columns itself on add_frame / save_episode.
_WRITER_COLUMNS = ("index", "episode_index", "frame_index", "timestamp", "task_index")


class DecodeVideosError(ValueError):
    """A bad input to `decode-videos`: the message names the value and what was expected (exit 2)."""


@dataclass
class DecodeVideosConfig:
    dataset: DatasetArgs = field(default_factory=DatasetArgs)
    # Where the image-storage copy goes (required). An existing copy of the same source is kept as is.
    output_dir: str | None = None
    # repo_id written into the copy's metadata (default: the source's, with "_images" appended).
    repo_id: str | None = None
    # DataLoader workers decoding the source videos ahead of the writer.
    num_workers: int = 1
    # Threads writing PNGs (LeRobot's image writer).
    image_writer_threads: int = 2
    # LeRobot video backend for reading the source (None = LeRobot's default).
    video_backend: str | None = None


def _fail(msg: str):
    raise DecodeVideosError(msg)


def _existing_copy(out: Path, fingerprint: str) -> bool:
    """True when ``out`` already holds the copy of this source; error when it holds anything else."""
    if not out.exists():
        return False
    marker = out / MARKER
    if not marker.is_file():
        _fail(f"--output_dir={out} exists and is not a decode-videos copy (no {MARKER}); "
              f"expected a new path or an earlier copy of the same dataset.")
    got = json.loads(marker.read_text()).get("source_fingerprint")
    if got != fingerprint:
        _fail(f"--output_dir={out} is a copy of another dataset (source fingerprint {got}); "
              f"expected {fingerprint} or a new path.")
    return True


def decode_videos(cfg: DecodeVideosConfig) -> Path:
    """Write the image-storage copy of ``cfg.dataset`` to ``cfg.output_dir``; return its path."""
    if not cfg.output_dir:
        _fail("--output_dir is required: the directory the image-storage copy goes to.")
    if cfg.num_workers < 0 or cfg.image_writer_threads < 0:
        _fail(f"--num_workers={cfg.num_workers} / --image_writer_threads={cfg.image_writer_threads}: expected >= 0.")
    import numpy as np
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_world.token_table import dataset_fingerprint
    from lerobot_world.tokenize_cli import segment_loader

    root = Path(cfg.dataset.root).expanduser() if cfg.dataset.root else None
    if root is not None and not (root / "meta" / "info.json").is_file():
        _fail(f"--dataset.root={root} is not a LeRobotDataset (no meta/info.json).")
    src = LeRobotDataset(cfg.dataset.repo_id, root=root, video_backend=cfg.video_backend)
    video_keys = list(src.meta.video_keys)
    if not video_keys:
        _fail(f"--dataset.repo_id={cfg.dataset.repo_id}: the dataset stores no video features "
              f"(features: {sorted(src.meta.features)}); expected a video dataset, it is already image storage.")
    fingerprint = dataset_fingerprint(src.meta)
    out = Path(cfg.output_dir).expanduser().resolve()
    if _existing_copy(out, fingerprint):
        print(f"{out}: already the image-storage copy of {cfg.dataset.repo_id} (fingerprint {fingerprint[:12]})")
        return out

    features = {k: dict(v) for k, v in src.meta.features.items() if k not in _WRITER_COLUMNS}
    for k in video_keys:
        features[k] = {"dtype": "image", "shape": tuple(features[k]["shape"]), "names": features[k]["names"]}
    other_keys = [k for k in features if k not in video_keys]
    cols = src.hf_dataset.with_format("numpy", columns=[*other_keys, "episode_index", "task_index"])[:]
    tasks = {int(i): t for t, i in zip(src.meta.tasks.index, src.meta.tasks["task_index"], strict=True)}
    ep_rows = np.flatnonzero(np.diff(cols["episode_index"])) + 1
    starts = np.concatenate([[0], ep_rows])
    ends = np.concatenate([ep_rows, [len(cols["episode_index"])]])

    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp_", dir=out.parent))
    t0 = time.perf_counter()
    try:
        dst = LeRobotDataset.create(
            repo_id=cfg.repo_id or f"{src.meta.repo_id}_images", fps=src.meta.fps, features=features,
            root=scratch / "ds", robot_type=src.meta.robot_type, use_videos=False,
            image_writer_threads=cfg.image_writer_threads,
        )
        # One video query per episode and camera (CameraSegments), decoded in loader workers.
        seg_len = int((ends - starts).max())
        loaders = [iter(segment_loader(src, k, seg_len, cfg.num_workers)) for k in video_keys]
        from tqdm import tqdm

        for a, b in tqdm(list(zip(starts, ends, strict=True)), desc="decode-videos", unit="ep", dynamic_ncols=True):
            frames = {}
            for k, it in zip(video_keys, loaders, strict=True):
                f, idx, _ = next(it)
                if len(idx) != b - a:
                    _fail(f"camera {k}: decoded {len(idx)} frames for rows {a}..{b}; expected {b - a}.")
                if f.is_floating_point():  # LeRobot returns float in [0, 1] from uint8 pixels: exact inverse
                    f = (f * 255).round().clamp(0, 255).to(torch.uint8)
                frames[k] = f.permute(0, 2, 3, 1).numpy()
            for i in range(b - a):
                row = {k: frames[k][i] for k in video_keys}
                row |= {k: cols[k][a + i] for k in other_keys}
                dst.add_frame(row | {"task": tasks[int(cols["task_index"][a + i])]})
            dst.save_episode()
        dst.finalize()
        shutil.copyfile(src.root / "meta" / "stats.json", scratch / "ds" / "meta" / "stats.json")
        (scratch / "ds" / MARKER).write_text(json.dumps({
            "source_repo_id": cfg.dataset.repo_id, "source_root": str(src.root),
            "source_fingerprint": fingerprint, "video_keys": video_keys,
            "frames": int(len(cols["episode_index"])), "episodes": int(len(starts)),
            "seconds": round(time.perf_counter() - t0, 1),
        }, indent=2) + "\n")
        (scratch / "ds").rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {out}: {len(starts)} episodes, {len(cols['episode_index'])} frames, "
          f"{len(video_keys)} cameras as PNG in {time.perf_counter() - t0:.0f} s")
    return out


def main(argv: list[str] | None = None) -> None:
    import draccus

    cfg = draccus.parse(DecodeVideosConfig, args=sys.argv[1:] if argv is None else argv)
    try:
        decode_videos(cfg)
    except DecodeVideosError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
