"""Benchmark the world tokenizer: encode throughput and k-means fit time at LIBERO scale.

    python scripts/bench_tokenizer.py                       # full: 273,465 x 768, V = 1024
    python scripts/bench_tokenizer.py --frames=4000 --vocab=64 --dinov2=tiny   # seconds (tests/CI)

Encode throughput is the tokenizer's forward (float [0,1] images -> tokens) on random 8-bit
images, after fitting its projection/codebook on random data (throughput does not depend on the
values). The k-means fit runs on synthetic embeddings (a Gaussian mixture, so Lloyd iterations
behave as on clustered data, not on structureless noise). Prints one JSON line at the end too.

Pipeline (``--pipeline_episodes > 0``): the encode stage of ``lerobot-world tokenize``
(``lerobot_world.tokens.tokenize.encode_frames``: video decoding in ``--num_workers`` DataLoader workers, pinned memory
on CUDA, the encoder on the device) on a LIBERO-shaped h264 dataset written to a temp dir, against
(a) the encoder's forward rate on a batch of the same frames already on the device and (b) the decode
rate alone. The stage cannot beat min(forward, decode); when decoding runs on other cores than the
encoder (a GPU plus CPU workers), ``pipeline / forward`` should approach min(1, decode / forward).
On a CPU-only machine decode and encoder share the same cores, so the fraction is lower there.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lerobot_world.devices import resolve_device  # noqa: E402
from lerobot_world.tokens.kmeans import kmeans_fit  # noqa: E402
from lerobot_world.tokens.tokenizer import HFVisionEncoder, PixelPCAEncoder, WorldTokenizer  # noqa: E402

DINOV2_SIZES = {
    # dinov2-base / -small architectures (random weights: the speed is the same), 224 px input.
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, patch_size=14, image_size=224),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=14, image_size=224),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8, image_size=32),
}


def _throughput(tok: WorldTokenizer, n: int, image_size: int, batch: int, device) -> float:
    gen = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (batch, 3, image_size, image_size), generator=gen, dtype=torch.uint8)
    imgs = (imgs.float() / 255).to(device)
    tok(imgs[:2])  # warm-up
    done, t = 0, time.perf_counter()
    while done < n:
        tok(imgs)
        done += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - t)


def _make_encoder(name: str, args):
    if name == "pixel_pca":
        return PixelPCAEncoder(pixel_size=16, out_dim=64)  # features() = the exact pooled pixels, no fit needed
    from transformers import Dinov2Config

    cfg = Dinov2Config(**DINOV2_SIZES[args.dinov2])
    return HFVisionEncoder("dinov2", cfg.to_dict(), cfg.image_size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), f"random dinov2-{args.dinov2}")


def bench_encode_pixel_pca(args, device) -> float:
    enc = _make_encoder("pixel_pca", args)
    enc.fit(torch.rand(1000, enc.in_dim, dtype=torch.float64))
    tok = WorldTokenizer(enc, args.vocab).to(device)
    tok.codebook.copy_(torch.randn(args.vocab, enc.out_dim, dtype=torch.float64))
    return _throughput(tok, args.encode_frames, args.image_size, args.batch_size, device)


def bench_encode_dinov2(args, device) -> float:
    enc = _make_encoder("dinov2", args)
    tok = WorldTokenizer(enc, args.vocab).to(device)
    tok.codebook.copy_(torch.randn(args.vocab, enc.out_dim, dtype=torch.float64))
    return _throughput(tok, args.dinov2_frames, args.image_size, min(args.batch_size, 32), device)


def bench_pipeline(args, device) -> dict:
    """tokenize's encode stage vs the encoder's forward rate and the decode rate, on one dataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from lerobot_world.tokens.tokenize import encode_frames, segment_loader
    from lerobot_world.toy_dataset import make_toy_dataset
    from lerobot_world.vocabulary import AGENT_KEY

    name = "pixel_pca" if args.dinov2 == "none" else f"dinov2-{args.dinov2}"
    encoder = _make_encoder("pixel_pca" if args.dinov2 == "none" else "dinov2", args).to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "libero_shaped"
        t = time.perf_counter()
        make_toy_dataset(root, repo_id="local/bench_pipeline", episodes_per_task=max(1, args.pipeline_episodes // 3),
                         image_size=args.image_size)
        t_make = time.perf_counter() - t
        ds = LeRobotDataset("local/bench_pipeline", root=root, return_uint8=True)
        n = ds.meta.total_frames

        # (b) decode alone, with the loader encode_frames uses
        loader = segment_loader(ds, AGENT_KEY, args.batch_size, args.num_workers)
        t = time.perf_counter()
        first = None
        for frames, _, _ in loader:
            first = frames if first is None or len(frames) > len(first) else first
        decode_fps = n / (time.perf_counter() - t)

        # (a) forward on a resident batch of real frames (the same batch size the stage uses)
        batch = first.to(device)
        with torch.no_grad():
            encoder.features(batch[:2])  # warm-up
            done, t = 0, time.perf_counter()
            while done < min(n, args.forward_frames):
                encoder.features(batch).cpu()  # .cpu() synchronises, as in encode_frames
                done += len(batch)
            forward_fps = done / (time.perf_counter() - t)

        # the stage itself
        t = time.perf_counter()
        encode_frames(ds, AGENT_KEY, encoder, device, args.batch_size, args.num_workers, desc="pipeline")
        pipeline_fps = n / (time.perf_counter() - t)
    r = {
        "pipeline_encoder": name, "pipeline_frames": n, "pipeline_batch": len(first), "num_workers": args.num_workers,
        "dataset_write_s": t_make, "decode_frames_per_s": decode_fps, "forward_frames_per_s": forward_fps,
        "pipeline_frames_per_s": pipeline_fps, "pipeline_over_forward": pipeline_fps / forward_fps,
        "bound_min_decode_forward": min(1.0, decode_fps / forward_fps),
    }
    print(
        f"tokenize encode stage, {name} on {device}, {n} frames of a {args.image_size}px h264 dataset, batch {len(first)}, "
        f"{args.num_workers} decode workers: decode alone {decode_fps:.0f} frames/s, encoder forward {forward_fps:.1f} frames/s, "
        f"stage {pipeline_fps:.1f} frames/s = {100 * r['pipeline_over_forward']:.0f}% of the forward rate "
        f"(bound with decode on separate cores: {100 * r['bound_min_decode_forward']:.0f}%)"
    )
    return r


def synthetic_embeddings(n: int, dim: int, n_modes: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    modes = torch.randn(n_modes, dim, generator=gen) * 2.0
    x = torch.randn(n, dim, generator=gen)
    x += modes[torch.randint(0, n_modes, (n,), generator=gen)]
    return x


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=273_465, help="k-means points (LIBERO: 273,465 frames)")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--kmeans_iters", type=int, default=50)
    p.add_argument("--encode_frames", type=int, default=4096, help="frames timed for the pixel_pca encoder")
    p.add_argument("--image_size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--dinov2", choices=["none", "tiny", "small", "base"], default="small",
                   help="DINOv2 architecture for the encode benchmarks (base = the GPU preset's world encoder; none = pixel_pca only)")
    p.add_argument("--dinov2_frames", type=int, default=128)
    p.add_argument("--synthetic", choices=["mixture", "gaussian"], default="mixture",
                   help="k-means data: Gaussian mixture (2V modes, like clustered embeddings) or structureless noise (worst case)")
    p.add_argument("--pipeline_episodes", type=int, default=24,
                   help="episodes of the LIBERO-shaped video dataset for the encode-stage benchmark (0 = skip)")
    p.add_argument("--forward_frames", type=int, default=512, help="frames timed for the resident-batch forward rate")
    p.add_argument("--num_workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)),
                   help="decode workers of the encode stage (tokenize --num_workers)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(resolve_device(args.device))
    res = {"device": str(device), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "args": vars(args)}

    res["pixel_pca_frames_per_s"] = bench_encode_pixel_pca(args, device)
    print(f"encode pixel_pca ({args.image_size}px, batch {args.batch_size}, {device}): {res['pixel_pca_frames_per_s']:.0f} frames/s")
    if args.dinov2 != "none":
        res[f"dinov2_{args.dinov2}_frames_per_s"] = fps = bench_encode_dinov2(args, device)
        print(f"encode dinov2-{args.dinov2} architecture, random weights ({args.image_size}px input, {device}): {fps:.1f} frames/s")

    if args.pipeline_episodes > 0:
        res["pipeline"] = bench_pipeline(args, device)

    if args.synthetic == "mixture":
        x = synthetic_embeddings(args.frames, args.dim, n_modes=2 * args.vocab)
    else:
        x = torch.randn(args.frames, args.dim, generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    km = kmeans_fit(x, args.vocab, seed=0, max_iter=args.kmeans_iters, device=device)
    res["kmeans_fit_s"] = time.perf_counter() - t
    res["kmeans_n_iter"], res["kmeans_converged"] = km.n_iter, km.converged
    used = int((torch.bincount(km.labels, minlength=args.vocab) > 0).sum())
    print(
        f"k-means fit {args.frames} x {args.dim}, V={args.vocab} ({args.synthetic} data) on {device}: {res['kmeans_fit_s']:.1f} s "
        f"({km.n_iter} iterations, {res['kmeans_fit_s'] / km.n_iter:.2f} s/iteration incl. init, converged={km.converged}, "
        f"{used}/{args.vocab} codes used)"
    )
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
