"""Benchmark the world tokenizer: encode throughput and k-means fit time at LIBERO scale.

    python scripts/bench_tokenizer.py                       # full: 273,465 x 768, V = 1024
    python scripts/bench_tokenizer.py --frames=4000 --vocab=64 --dinov2=tiny   # seconds (tests/CI)

Encode throughput is the tokenizer's forward (float [0,1] images -> tokens) on random 8-bit
images, after fitting its projection/codebook on random data (throughput does not depend on the
values). The k-means fit runs on synthetic embeddings (a Gaussian mixture, so Lloyd iterations
behave as on clustered data, not on structureless noise). Prints one JSON line at the end too.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lerobot_world.kmeans import kmeans_fit, resolve_device  # noqa: E402
from lerobot_world.world_tokenizer import HFVisionEncoder, PixelPCAEncoder, WorldTokenizer  # noqa: E402

DINOV2_SIZES = {
    # dinov2-small's architecture (random weights: the speed is the same), 224 px input.
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


def bench_encode_pixel_pca(args, device) -> float:
    enc = PixelPCAEncoder(pixel_size=16, out_dim=64)
    enc.fit(torch.rand(1000, enc.in_dim, dtype=torch.float64))
    tok = WorldTokenizer(enc, args.vocab).to(device)
    tok.codebook.copy_(torch.randn(args.vocab, enc.out_dim, dtype=torch.float64))
    return _throughput(tok, args.encode_frames, args.image_size, args.batch_size, device)


def bench_encode_dinov2(args, device) -> float:
    from transformers import Dinov2Config

    cfg = Dinov2Config(**DINOV2_SIZES[args.dinov2])
    enc = HFVisionEncoder("dinov2", cfg.to_dict(), cfg.image_size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), f"random dinov2-{args.dinov2}")
    tok = WorldTokenizer(enc, args.vocab).to(device)
    tok.codebook.copy_(torch.randn(args.vocab, enc.out_dim, dtype=torch.float64))
    return _throughput(tok, args.dinov2_frames, args.image_size, min(args.batch_size, 32), device)


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
    p.add_argument("--dinov2", choices=["none", "tiny", "small"], default="small")
    p.add_argument("--dinov2_frames", type=int, default=128)
    p.add_argument("--synthetic", choices=["mixture", "gaussian"], default="mixture",
                   help="k-means data: Gaussian mixture (2V modes, like clustered embeddings) or structureless noise (worst case)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    res = {"device": str(device), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "args": vars(args)}

    res["pixel_pca_frames_per_s"] = bench_encode_pixel_pca(args, device)
    print(f"encode pixel_pca ({args.image_size}px, batch {args.batch_size}, {device}): {res['pixel_pca_frames_per_s']:.0f} frames/s")
    if args.dinov2 != "none":
        res[f"dinov2_{args.dinov2}_frames_per_s"] = fps = bench_encode_dinov2(args, device)
        print(f"encode dinov2-{args.dinov2} architecture, random weights ({args.image_size}px input, {device}): {fps:.1f} frames/s")

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
