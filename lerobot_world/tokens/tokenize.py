"""`lerobot-world tokenize`: fit a world-token codebook on a dataset's training episodes and write
a token table (one token per frame of one camera) beside it.

Pipeline: decode every frame of ``--image_key`` with LeRobotDataset (DataLoader workers, one video
query per run of frames) -> the tokenizer's frozen encoder features -> fit the encoder projection
(pixel_pca) and k-means on the *training* episodes only (``lerobot_world.splits``, the rule
``lerobot-train --dataset.eval_split`` uses) -> quantise every frame with the same module the policy
carries -> write the table to a temp dir beside ``--output_dir`` and move it into place.

Example:
    lerobot-world tokenize --dataset.repo_id=HuggingFaceVLA/libero --dataset.root=/data/libero \\
        --encoder=pixel_pca --vocab_size=1024 --output_dir=/data/libero_world_tokens
"""

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_world.errors import UserError, fail, parse_config, run_command
from lerobot_world.outputs import staged_dir
from lerobot_world.splits import DEFAULT_EVAL_SPLIT, DatasetArgs
from lerobot_world.vocabulary import AGENT_KEY


@dataclass
class TokenizeConfig:
    dataset: DatasetArgs = field(default_factory=DatasetArgs)
    # Where the table directory goes (required). Written atomically; never overwrites a different table.
    output_dir: str | None = None
    # 'pixel_pca' (offline, no weights), a Hugging Face model id (facebook/dinov2-small, ...;
    # aliases dinov2_small, dinov2_base, siglip_base) or a local save_pretrained directory.
    encoder: str = "pixel_pca"
    # Codebook size V.
    vocab_size: int = 256
    # Camera whose frames are tokenized.
    image_key: str = AGENT_KEY
    # Held-out fraction per task (lerobot_world.splits); the codebook is fitted on the rest.
    eval_split: float = DEFAULT_EVAL_SPLIT
    # Seed of the k-means initialisation (same seed + same data -> same table).
    seed: int = 0
    # Baselines P(w_t = w_{t+k}) and bigram are reported for k = 1..max_horizon.
    max_horizon: int = 8
    # pixel_pca: side of the area-downsampled image (pixel_size^2 x 3 features).
    pixel_size: int = 16
    # pixel_pca: number of whitened PCA dimensions kept (fewer if the training frames have lower rank).
    pca_dim: int = 64
    # k-means: Lloyd iteration cap.
    kmeans_iters: int = 50
    # Frames per encoder batch.
    batch_size: int = 64
    # 'auto' = cuda when available, else cpu.
    device: str = "auto"
    # DataLoader workers decoding video.
    num_workers: int = 2
    # LeRobot video backend (None = LeRobot's default).
    video_backend: str | None = None

    def settings(self) -> dict:
        """Everything that determines the table's content (not where or how fast it was computed)."""
        s = {k: getattr(self, k) for k in ("encoder", "vocab_size", "image_key", "eval_split", "seed", "max_horizon", "kmeans_iters")}
        if self.encoder == "pixel_pca":
            s.update(pixel_size=self.pixel_size, pca_dim=self.pca_dim)
        return s


class CameraSegments:
    """Map-style dataset over one camera: item ``j`` = up to ``segment_len`` consecutive frames of one
    episode, decoded by LeRobot exactly as ``dataset[i][key]`` -> (uint8 [n,3,H,W], index [n], episode [n]).

    Why segments: LeRobot's video query decodes from the previous keyframe up to the last requested
    timestamp, so one call for a run of frames costs about one per-frame call (17x fewer decodes on a
    140-frame episode here, identical frames). Only this camera is decoded (half the work on a two-camera
    dataset). Image-storage keys go through ``dataset[i]``. Tests check the frames equal ``dataset[i][key]``.
    """

    def __init__(self, ds, key: str, segment_len: int):
        import numpy as np

        self.ds, self.key = ds, key
        cols = ds.hf_dataset.with_format("numpy", columns=["index", "episode_index", "timestamp"])[:]
        self.index = cols["index"].astype("int64")
        self.episode_index = cols["episode_index"].astype("int64")
        self.timestamp = cols["timestamp"]
        reader = getattr(ds, "reader", None)
        self.video = key in ds.meta.video_keys and hasattr(reader, "_query_videos")
        # Rows are stored episode by episode; cut every episode into runs of <= segment_len rows.
        bounds = np.flatnonzero(np.diff(self.episode_index)) + 1
        starts = np.concatenate([[0], bounds]) if len(self.index) else np.zeros(0, dtype=np.int64)
        ends = np.concatenate([bounds, [len(self.index)]]) if len(self.index) else np.zeros(0, dtype=np.int64)
        self.segments = [(a, min(a + segment_len, e)) for s, e in zip(starts, ends, strict=True) for a in range(s, e, segment_len)]

    def __len__(self):
        return len(self.segments)

    @property
    def n_frames(self) -> int:
        return len(self.index)

    def __getitem__(self, j):
        import torch

        a, b = self.segments[j]
        idx, ep = torch.from_numpy(self.index[a:b]), torch.from_numpy(self.episode_index[a:b])
        if self.video:
            ts = [float(t) for t in self.timestamp[a:b]]  # same floats as LeRobot's item["timestamp"].item()
            frames = self.ds.reader._query_videos({self.key: ts}, int(self.episode_index[a]))[self.key]
            frames = frames.reshape(len(ts), *frames.shape[-3:])
        else:
            frames = torch.stack([self.ds[int(i)][self.key] for i in range(a, b)])
        return frames, idx, ep


def segment_loader(ds, key: str, segment_len: int, num_workers: int, pin_memory: bool = False):
    """DataLoader over ``CameraSegments``: each item is already a batch (one run of frames), decoded in
    ``num_workers`` worker processes ahead of the consumer."""
    from torch.utils.data import DataLoader

    return DataLoader(CameraSegments(ds, key, segment_len), batch_size=None, shuffle=False, num_workers=num_workers,
                      pin_memory=pin_memory, prefetch_factor=4 if num_workers > 0 else None)


def encode_frames(ds, key: str, encoder, device, batch_size: int, num_workers: int, desc: str = "encode"):
    """Frozen encoder features of every frame of ``key`` -> (features float64 [N,F] on CPU, index, episode_index).
    Decoding runs in DataLoader workers (pinned memory on CUDA) while the encoder runs, so the encoder's rate
    bounds the stage when ``num_workers`` decoders keep up with it."""
    import torch
    from tqdm.auto import tqdm

    pin = device.type == "cuda"
    loader = segment_loader(ds, key, batch_size, num_workers, pin_memory=pin)
    n = loader.dataset.n_frames
    feats = index = episode_index = None
    filled = torch.zeros(n, dtype=torch.bool)
    with torch.no_grad(), tqdm(total=n, desc=desc, unit="frame") as bar:
        for imgs, idx, ep in loader:
            f = encoder.features(imgs.to(device, non_blocking=pin)).cpu()
            if feats is None:
                feats = torch.empty(n, f.shape[1], dtype=torch.float64)
                index = torch.full((n,), -1, dtype=torch.long)
                episode_index = torch.full((n,), -1, dtype=torch.long)
            if int(idx.max()) >= n or int(idx.min()) < 0:
                _fail(f"dataset {ds.repo_id} has frame index {int(idx.max())} outside 0..{n - 1}; expected contiguous global indices")
            feats[idx], index[idx], episode_index[idx], filled[idx] = f, idx, ep, True
            bar.update(len(idx))
    if not bool(filled.all()):
        _fail(f"dataset {ds.repo_id} frame indices do not cover 0..{n - 1}; expected one frame per global index")
    return feats, index, episode_index


def _fail(msg: str):
    raise UserError(msg)


def _check_output_dir(out: Path, settings: dict, fingerprint: str, repo_id: str) -> bool:
    """True if ``out`` already holds this exact table; ValueError if it holds anything else."""
    from lerobot_world.tokens.table import META_FILE, TABLE_FILES

    if not out.exists():
        return False
    if not out.is_dir():
        _fail(f"--output_dir={out} exists and is not a directory; expected a new or empty directory for the table")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return False
    if set(TABLE_FILES) <= set(entries):
        try:
            meta = json.loads((out / META_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        same = (
            meta.get("settings") == settings
            and meta.get("fingerprint") == fingerprint
            and meta.get("dataset", {}).get("repo_id") == repo_id
            and set(entries) == set(TABLE_FILES)
        )
        if same:
            return True
        diff = [k for k in settings if meta.get("settings", {}).get(k) != settings[k]]
        why = f"settings differ ({', '.join(diff)})" if diff else "it was made from different dataset contents"
        _fail(f"--output_dir={out} already holds a different world-token table ({why}); choose another --output_dir or delete it")
    _fail(f"--output_dir={out} is not empty and does not hold a world-token table (found {', '.join(entries[:5])}); expected a new or empty directory")


def tokenize(cfg: TokenizeConfig) -> Path:
    """Run the whole pipeline; returns the table directory. Bad input -> ValueError (one sentence)."""
    import torch

    from lerobot_world.devices import resolve_device
    from lerobot_world.splits import split_dataset
    from lerobot_world.tokens.kmeans import kmeans_fit
    from lerobot_world.tokens.table import dataset_fingerprint, token_stats, write_table
    from lerobot_world.tokens.tokenizer import WorldTokenizer, make_encoder, resolve_encoder_name

    # --- cheap checks first: nothing is decoded or loaded before the inputs are known good --------
    if not cfg.output_dir:
        _fail("--output_dir is required (the directory the token table is written to)")
    if cfg.vocab_size < 2:
        _fail(f"--vocab_size={cfg.vocab_size} is too small; expected an integer >= 2")
    if cfg.max_horizon < 1:
        _fail(f"--max_horizon={cfg.max_horizon}; expected an integer >= 1")
    if cfg.batch_size < 1 or cfg.num_workers < 0 or cfg.kmeans_iters < 1:
        _fail(f"--batch_size, --kmeans_iters must be >= 1 and --num_workers >= 0, got {cfg.batch_size}, {cfg.kmeans_iters}, {cfg.num_workers}")
    resolve_encoder_name(cfg.encoder)  # unknown encoder -> ValueError before any work
    device = torch.device(resolve_device(cfg.device))
    out = Path(cfg.output_dir).expanduser().resolve()

    from lerobot_world.dataset import open_metadata

    root = Path(cfg.dataset.root).expanduser() if cfg.dataset.root else None
    meta = open_metadata(cfg.dataset.repo_id, root)
    cameras = list(meta.camera_keys)
    if cfg.image_key not in cameras:
        _fail(f"--image_key={cfg.image_key!r} is not a camera of dataset {cfg.dataset.repo_id}; expected one of {cameras}")
    split = split_dataset(meta, cfg.eval_split)
    lengths = dict(zip(map(int, meta.episodes["episode_index"]), map(int, meta.episodes["length"]), strict=True))
    n_train_frames = sum(lengths[e] for e in split.train)
    if cfg.vocab_size > n_train_frames:
        _fail(f"--vocab_size={cfg.vocab_size} exceeds the {n_train_frames} frames of the {len(split.train)} training episodes; expected at most {n_train_frames}")
    fingerprint = dataset_fingerprint(meta)
    settings = cfg.settings()
    if _check_output_dir(out, settings, fingerprint, cfg.dataset.repo_id):
        print(f"{out} already holds this table (same settings, same dataset fingerprint {fingerprint[:12]}); leaving it unchanged.")
        return out

    t0 = time.time()
    encoder = make_encoder(cfg.encoder, pixel_size=cfg.pixel_size, pca_dim=cfg.pca_dim)
    encoder.to(device)

    # --- 1. frozen encoder features of every frame -------------------------------------------------
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(cfg.dataset.repo_id, root=root, video_backend=cfg.video_backend, return_uint8=True)
    feats, index, episode_index = encode_frames(
        ds, cfg.image_key, encoder, device, cfg.batch_size, cfg.num_workers,
        desc=f"encode {cfg.image_key} ({cfg.encoder}, {device.type})",
    )
    n = feats.shape[0]
    t_encode = time.time() - t0

    # --- 2. fit the projection and the codebook on training frames only ---------------------------
    train_mask = torch.isin(episode_index, torch.tensor(split.train, dtype=torch.long))
    encoder.fit(feats[train_mask])
    encoder.to(device)
    emb = torch.cat([encoder.project(feats[s : s + 65536].to(device)).cpu() for s in range(0, n, 65536)])
    t1 = time.time()
    km = kmeans_fit(emb[train_mask], cfg.vocab_size, seed=cfg.seed, max_iter=cfg.kmeans_iters, device=device)
    t_kmeans = time.time() - t1
    tokenizer = WorldTokenizer(encoder, cfg.vocab_size).to(device)
    tokenizer.codebook.copy_(km.centroids.double())
    # Tokens: the module's own quantize() (forward == quantize(embed(x)), float64).
    tokens = torch.cat([tokenizer.quantize(emb[s : s + 65536].to(device)).cpu() for s in range(0, n, 65536)])
    tokenizer.cpu()

    # --- 3. statistics and the table -----------------------------------------------------------------
    stats = token_stats(tokens, episode_index, split.train, split.heldout, cfg.vocab_size, cfg.max_horizon)
    table_meta = {
        "dataset": {
            "repo_id": cfg.dataset.repo_id,
            "root": str(Path(meta.root).resolve()),
            "total_frames": int(meta.total_frames),
            "total_episodes": int(meta.total_episodes),
            "fps": int(meta.fps),
        },
        "fingerprint": fingerprint,
        "encoder": cfg.encoder,
        "image_key": cfg.image_key,
        "vocab_size": cfg.vocab_size,
        "embed_dim": int(encoder.out_dim),
        "settings": settings,
        "split": split.to_dict(),
        "fit": {"frames": int(train_mask.sum()), "episodes": split.train},
        "kmeans": {
            "n_iter": km.n_iter,
            "converged": km.converged,
            "inertia_per_frame": km.inertia / max(1, int(train_mask.sum())),
            "reseeded_empty_clusters": km.n_reseeded,
        },
        "stats": stats,
    }
    with staged_dir(out) as staged:
        write_table(staged.path, tokenizer, index, episode_index, tokens, table_meta)
        if out.exists():  # re-check right before the move: only an empty dir may be replaced
            if _check_output_dir(out, settings, fingerprint, cfg.dataset.repo_id):
                staged.discard()
                return out
            out.rmdir()
    _print_summary(out, table_meta, t_encode, t_kmeans, n)
    return out


def _print_summary(out: Path, m: dict, t_encode: float, t_kmeans: float, n: int) -> None:
    s, v = m["stats"], m["vocab_size"]
    print(f"\nworld-token table written to {out}")
    print(f"  dataset {m['dataset']['repo_id']}: {n} frames, {m['dataset']['total_episodes']} episodes, camera {m['image_key']}")
    print(f"  encoder {m['encoder']} (dim {m['embed_dim']}), vocab {v}; fit on {m['fit']['frames']} frames of {len(m['split']['train'])} training episodes, "
          f"{len(m['split']['heldout'])} held out (eval_split={m['split']['eval_split']})")
    print(f"  encode {t_encode:.1f} s ({n / max(t_encode, 1e-9):.0f} frames/s), k-means {t_kmeans:.1f} s ({m['kmeans']['n_iter']} iterations, converged={m['kmeans']['converged']})")
    for name in ("train", "heldout"):
        u = s[name]
        print(f"  {name:<8} usage {u['used_codes']}/{v} ({100 * u['usage']:.1f}%), perplexity {u['perplexity']:.1f}, dead codes {u['dead_codes']}")
    print("  held-out baselines   k: " + " ".join(f"{h['k']:>6}" for h in s["horizons"]))
    for key, label in (("copy", "copy P(w_t=w_t+k)"), ("bigram_top1", "bigram top-1"), ("bigram_top5", "bigram top-5")):
        vals = " ".join(f"{h[key]:6.3f}" if h[key] is not None else "     -" for h in s["horizons"])
        print(f"  {label:<22} {vals}")
    print(f"  meta: {out / 'meta.json'}")


def main(argv: list[str] | None = None) -> None:
    cfg = run_command(parse_config, TokenizeConfig, sys.argv[1:] if argv is None else argv)
    try:
        tokenize(cfg)
    except (UserError, ValueError) as e:  # ValueError: the table, split and tokenizer checks name the bad input
        fail(str(e))


if __name__ == "__main__":
    main()
