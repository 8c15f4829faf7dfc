"""World-token table: one token per dataset frame + the tokenizer that made them + meta.json.

Directory layout (written by ``lerobot-world tokenize``, DESIGN §3):
- ``tokens.parquet``         columns index, episode_index, token (int64), one row per global frame index
- ``tokenizer_spec.json``    ``WorldTokenizer.spec_json()`` (structure, no weights)
- ``tokenizer.safetensors``  the tokenizer's state dict (encoder params + codebook)
- ``meta.json``              dataset identity + fingerprint, settings, split, codebook statistics
"""

import hashlib
import json
from pathlib import Path

import torch

from lerobot_world.tokens.tokenizer import WorldTokenizer, perplexity

TABLE_FORMAT = "lerobot_world.token_table/1"
META_FILE, TOKENS_FILE, SPEC_FILE, WEIGHTS_FILE = "meta.json", "tokens.parquet", "tokenizer_spec.json", "tokenizer.safetensors"
TABLE_FILES = (META_FILE, TOKENS_FILE, SPEC_FILE, WEIGHTS_FILE)

# Fingerprint sampling: files up to this size are hashed whole; larger ones by size + head, tail
# and evenly spaced blocks, so a check at every training start reads at most ~3 MB per file.
_FULL_HASH_MAX = 8 << 20
_BLOCK, _N_BLOCKS = 64 << 10, 32


def _hash_file(h, path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{size}\n".encode())
    with open(path, "rb") as f:
        if size <= _FULL_HASH_MAX:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
            return
        for i in range(_N_BLOCKS + 1):
            f.seek(min(size - _BLOCK, (size - _BLOCK) * i // _N_BLOCKS))
            h.update(f.read(_BLOCK))
        f.seek(0)
        h.update(f.read(1 << 20))
        f.seek(size - (1 << 20))
        h.update(f.read(1 << 20))


def dataset_fingerprint(dataset_meta) -> str:
    """sha256 of what defines the frames: info.json's frame/episode counts, fps and features, and the
    bytes of every file under ``data/`` and ``videos/`` (relative path, size, content; large files
    sampled). Adding, removing or re-encoding frames changes it; copying or moving the dataset, or
    recomputing its stats, does not."""
    root = Path(dataset_meta.root)
    info = json.loads((root / "meta" / "info.json").read_text())
    ident = {k: info.get(k) for k in ("codebase_version", "total_frames", "total_episodes", "fps", "features")}
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode())
    for sub in ("data", "videos"):
        base = root / sub
        files = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")) if base.is_dir() else []
        for p in files:
            h.update(f"\n{p.relative_to(root).as_posix()}\n".encode())
            _hash_file(h, p)
    return h.hexdigest()


def token_stats(
    tokens: torch.Tensor,
    episode_index: torch.Tensor,
    train_episodes: list[int],
    heldout_episodes: list[int],
    vocab_size: int,
    max_horizon: int = 8,
) -> dict:
    """Codebook usage on train/held-out frames, and per horizon k the held-out copy baseline
    P(w_t = w_{t+k}) and majority/bigram baseline (most frequent successor of w_t at distance k,
    counted on training episodes; a token never seen in training predicts itself)."""
    tokens, episode_index = tokens.long(), episode_index.long()
    # Frames ordered by (episode, index): pairs (t, t+k) never cross an episode boundary.
    order = torch.argsort(episode_index, stable=True)
    tok, ep = tokens[order], episode_index[order]
    is_train = torch.isin(ep, torch.tensor(train_episodes, dtype=torch.long))
    is_held = torch.isin(ep, torch.tensor(heldout_episodes, dtype=torch.long))

    def usage(mask):
        counts = torch.bincount(tok[mask], minlength=vocab_size)
        used = int((counts > 0).sum())
        return {
            "frames": int(mask.sum()),
            "used_codes": used,
            "usage": used / vocab_size,
            "dead_codes": vocab_size - used,
            "perplexity": perplexity(counts),
        }

    horizons = []
    for k in range(1, max_horizon + 1):
        if k >= len(tok):
            break
        a, b = tok[:-k], tok[k:]
        same = ep[:-k] == ep[k:]
        tr, he = same & is_train[:-k], same & is_held[:-k]
        pair_counts = torch.bincount(a[tr] * vocab_size + b[tr], minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)
        seen = pair_counts.sum(1) > 0
        top5 = torch.topk(pair_counts, min(5, vocab_size), dim=1, sorted=True)
        # argmax ties -> lowest token id (deterministic); unseen rows predict the token itself.
        top1 = torch.where(seen, pair_counts.argmax(1), torch.arange(vocab_size))
        ha, hb = a[he], b[he]
        n = int(he.sum())
        row_top5 = top5.indices[ha]
        valid5 = top5.values[ha] > 0
        hit5 = ((row_top5 == hb.unsqueeze(1)) & valid5).any(1) | (~seen[ha] & (ha == hb))
        horizons.append(
            {
                "k": k,
                "heldout_pairs": n,
                "copy": float((ha == hb).double().mean()) if n else None,
                "bigram_top1": float((top1[ha] == hb).double().mean()) if n else None,
                "bigram_top5": float(hit5.double().mean()) if n else None,
            }
        )
    return {
        "all": usage(torch.ones_like(is_train)),
        "train": usage(is_train),
        "heldout": usage(is_held),
        "horizons": horizons,
    }


class WorldTokenTable:
    """A loaded token table (see the module docstring for the files)."""

    def __init__(self, path: Path, tokens: torch.Tensor, episode_index: torch.Tensor, meta: dict):
        self.path = Path(path)
        self.tokens = tokens
        self.episode_index = episode_index
        self.meta = meta
        self.vocab_size = int(meta["vocab_size"])
        self.fingerprint = str(meta["fingerprint"])
        self.train_episodes = [int(e) for e in meta["split"]["train"]]
        self.heldout_episodes = [int(e) for e in meta["split"]["heldout"]]
        self.eval_split = float(meta["split"]["eval_split"])

    @classmethod
    def load(cls, path) -> "WorldTokenTable":
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"world-token table {path} does not exist or is not a directory (make one with `lerobot-world tokenize`)")
        missing = [f for f in TABLE_FILES if not (path / f).is_file()]
        if missing:
            raise ValueError(f"{path} is not a world-token table: it lacks {', '.join(missing)} (make one with `lerobot-world tokenize`)")
        try:
            meta = json.loads((path / META_FILE).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path / META_FILE} is not valid JSON ({e})") from None
        if meta.get("format") != TABLE_FORMAT:
            raise ValueError(f"{path} is not a world-token table: meta.json format is {meta.get('format')!r}, expected {TABLE_FORMAT!r}")
        t = pq.read_table(path / TOKENS_FILE)
        cols = {"index", "episode_index", "token"}
        if not cols <= set(t.column_names):
            raise ValueError(f"{path / TOKENS_FILE} lacks columns {sorted(cols - set(t.column_names))}")
        index = torch.from_numpy(t.column("index").to_numpy().astype("int64"))
        n = int(meta["dataset"]["total_frames"])
        if len(index) != n or not torch.equal(index, torch.arange(n)):
            raise ValueError(f"{path / TOKENS_FILE} must hold one row per frame index 0..{n - 1} in order (it has {len(index)} rows)")
        tokens = torch.from_numpy(t.column("token").to_numpy().astype("int64"))
        episode_index = torch.from_numpy(t.column("episode_index").to_numpy().astype("int64"))
        return cls(path, tokens, episode_index, meta)

    def build_tokenizer(self) -> WorldTokenizer:
        """The tokenizer that made this table (encoder params + codebook loaded)."""
        from safetensors.torch import load_file

        tok = WorldTokenizer.from_spec_json((self.path / SPEC_FILE).read_text())
        tok.load_state_dict(load_file(self.path / WEIGHTS_FILE), strict=True)
        return tok

    def check_matches(self, dataset_meta) -> None:
        """ValueError if ``dataset_meta`` (LeRobotDatasetMetadata) is not the dataset this table was made from."""
        d = self.meta["dataset"]
        redo = "re-run `lerobot-world tokenize` for this dataset"
        if int(dataset_meta.total_frames) != int(d["total_frames"]) or int(dataset_meta.total_episodes) != int(d["total_episodes"]):
            raise ValueError(
                f"world-token table {self.path} was made for {d['total_frames']} frames / {d['total_episodes']} episodes, "
                f"but dataset {dataset_meta.repo_id} at {dataset_meta.root} has {dataset_meta.total_frames} frames / "
                f"{dataset_meta.total_episodes} episodes; {redo}"
            )
        fp = dataset_fingerprint(dataset_meta)
        if fp != self.fingerprint:
            raise ValueError(
                f"world-token table {self.path} does not match dataset {dataset_meta.repo_id} at {dataset_meta.root}: "
                f"fingerprint {self.fingerprint[:12]} in the table vs {fp[:12]} now (its frames changed); {redo}"
            )

    def __repr__(self):
        return f"WorldTokenTable({str(self.path)!r}, frames={len(self.tokens)}, vocab_size={self.vocab_size})"


def write_table(
    out_dir: Path, tokenizer: WorldTokenizer, index: torch.Tensor, episode_index: torch.Tensor, tokens: torch.Tensor, meta: dict
) -> None:
    """Write the four table files into ``out_dir`` (an empty, private temp dir: see lerobot_world.tokens.tokenize)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in tokenizer.state_dict().items()}
    save_file(state, out_dir / WEIGHTS_FILE)
    (out_dir / SPEC_FILE).write_text(tokenizer.spec_json())
    table = pa.table(
        {
            "index": pa.array(index.numpy().astype("int64")),
            "episode_index": pa.array(episode_index.numpy().astype("int64")),
            "token": pa.array(tokens.numpy().astype("int64")),
        }
    )
    pq.write_table(table, out_dir / TOKENS_FILE)
    (out_dir / META_FILE).write_text(json.dumps({"format": TABLE_FORMAT, **meta}, indent=2, sort_keys=False) + "\n")
