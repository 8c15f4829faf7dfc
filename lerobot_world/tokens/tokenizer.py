"""The world tokenizer: frozen image encoder + k-means codebook, one int token per camera frame.

It is a ``torch.nn.Module`` whose whole state lives in persistent buffers (and frozen
parameters), so it travels inside the policy's ``model.safetensors``; its structure travels as
``spec_json()``. ``lerobot-world tokenize`` builds the token table by running *this* module on
frames decoded by LeRobotDataset, and the policy runs the same module on live camera images, so
one frame gives one token on both paths.

Why the outputs agree exactly:
- inputs are snapped to the 8-bit grid first (``round(x * 255)``): video decoding and cameras
  produce 8-bit pixels, so float32 / float64 / uint8 versions of a frame become identical;
- the offline encoder's area pooling sums integers exactly (one correctly rounded division per
  block), so it is bit-identical for any batch size and device;
- everything after it (PCA, distances to the codebook) is float64 and per-row; a token could only
  flip for a frame within ~1e-15 (relative) of a Voronoi boundary;
- autocast is disabled inside the module, and it stays in eval mode.

Encoders:
- ``pixel_pca`` (default, no weights): area-downsample to ``pixel_size``^2 x 3, then PCA whitening
  fitted on the training frames. Why it clusters meaningfully: at 16x16 the image still shows
  where the arm, gripper and objects are (the state of the world), while texture, compression
  noise and sub-block jitter are averaged away; PCA keeps the directions in which training frames
  actually vary (scene, arm and object motion) and drops the static background, and whitening
  gives each kept direction equal weight so k-means distances are not dominated by the one or
  two largest motions (e.g. the arm) and also separate smaller changes (object moved, gripper).
- Hugging Face vision models by id or local directory (DINOv2, SigLIP vision tower, ...): the
  image is resized (whole frame, no crop, bilinear + antialias) to the model's input size and
  normalised with its mean/std; the embedding is the L2-normalised pooled output.
"""

import json
import math
import os
import re

import torch
import torch.nn.functional as F
from torch import nn

from lerobot_world.errors import first_line

SPEC_FORMAT = "lerobot_world.world_tokenizer/1"
OFFLINE_ENCODER = "pixel_pca"
# Short names for the pretrained encoders users ask for most.
ENCODER_ALIASES = {
    "dinov2_small": "facebook/dinov2-small",
    "dinov2_base": "facebook/dinov2-base",
    "siglip_base": "google/siglip-base-patch16-224",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def describe_encoders() -> str:
    return (
        f"'{OFFLINE_ENCODER}' (offline, no weights), a Hugging Face model id such as 'facebook/dinov2-small' "
        f"(aliases: {', '.join(ENCODER_ALIASES)}), or a local directory saved with save_pretrained"
    )


def resolve_encoder_name(name: str) -> tuple[str, str]:
    """('pixel_pca', name) or ('hf', model id / directory); ValueError for anything else."""
    if name == OFFLINE_ENCODER:
        return "pixel_pca", name
    if name in ENCODER_ALIASES:
        return "hf", ENCODER_ALIASES[name]
    if os.path.isdir(name) or _HUB_ID.match(name):
        return "hf", name
    raise ValueError(f"unknown encoder {name!r}; expected {describe_encoders()}")


def to_pixel_grid(images: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] (or [3,H,W]) uint8, or float in [0, 1] -> float32 holding integers 0..255.

    Float input is taken as float32 first (what LeRobotDataset and cameras give), so a frame maps
    to the same 8-bit values whatever its dtype on the way in.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"world tokenizer expects images [B, 3, H, W], got shape {list(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float()
    if not images.is_floating_point():
        raise ValueError(f"world tokenizer expects uint8 or float images in [0, 1], got dtype {images.dtype}")
    x = images.float()
    if x.numel():
        lo, hi = torch.aminmax(x)
        if float(lo) < -1e-3 or float(hi) > 1 + 1e-3:
            raise ValueError(
                f"world tokenizer expects float images in [0, 1] (raw camera pixels), got values in [{float(lo):.3g}, {float(hi):.3g}]"
            )
    return (x * 255.0).round_().clamp_(0, 255)


def area_pool_exact(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Adaptive area pooling of 8-bit pixel values [B,C,H,W] to [B,C,size,size], float64 in [0, 1].

    Same block boundaries as ``F.adaptive_avg_pool2d``, but every block sum is an exact integer
    (float32 sums of integers below 2^24 are exact in any order; otherwise int64 cumsums) and the
    mean is one correctly rounded float64 division: bit-identical on any device and batch size.
    """
    h, w = pixels.shape[-2:]
    if h % size == 0 and w % size == 0 and (h // size) * (w // size) * 255 < 2**24:
        sums = F.avg_pool2d(pixels.float(), (h // size, w // size), divisor_override=1)
        return sums.double() / float((h // size) * (w // size) * 255)

    def bounds(n):
        start = torch.tensor([(i * n) // size for i in range(size)], device=pixels.device)
        end = torch.tensor([-((-(i + 1) * n) // size) for i in range(size)], device=pixels.device)
        return start, end

    pixels = pixels.long()
    (hs, he), (ws, we) = bounds(h), bounds(w)
    zero_row = pixels.new_zeros(*pixels.shape[:2], 1, w)
    ch = torch.cat([zero_row, pixels.cumsum(2)], 2)  # [B,C,H+1,W]
    rows = ch[:, :, he] - ch[:, :, hs]  # [B,C,size,W]
    zero_col = rows.new_zeros(*rows.shape[:3], 1)
    cw = torch.cat([zero_col, rows.cumsum(3)], 3)
    blocks = cw[..., we] - cw[..., ws]  # [B,C,size,size] exact integer sums
    counts = ((he - hs)[:, None] * (we - ws)[None, :]) * 255
    return blocks.double() / counts.double()


class ImageEncoder(nn.Module):
    """Frozen two-stage encoder: ``features`` (fixed) then ``project`` (fitted on training frames)."""

    out_dim: int

    def features(self, images: torch.Tensor) -> torch.Tensor:  # -> float64 [B, F]
        raise NotImplementedError

    def project(self, feats: torch.Tensor) -> torch.Tensor:  # float64 [B, F] -> [B, D]
        return feats

    def fit(self, train_feats: torch.Tensor) -> None:
        """Fit the projection on training-frame features (float64 [N, F]); no-op by default."""

    def spec(self) -> dict:
        raise NotImplementedError


class PixelPCAEncoder(ImageEncoder):
    """Area-downsampled pixels + PCA whitening (see the module docstring for why)."""

    def __init__(self, pixel_size: int = 16, out_dim: int = 64, whiten: bool = True):
        super().__init__()
        if pixel_size < 1 or out_dim < 1:
            raise ValueError(f"pixel_pca needs pixel_size >= 1 and pca_dim >= 1, got {pixel_size} and {out_dim}")
        self.pixel_size, self.out_dim, self.whiten = pixel_size, out_dim, whiten
        self.in_dim = 3 * pixel_size * pixel_size
        if out_dim > self.in_dim:
            raise ValueError(f"pca_dim={out_dim} exceeds the {self.in_dim} pixel features of pixel_size={pixel_size}")
        self.register_buffer("mean", torch.zeros(self.in_dim, dtype=torch.float64))
        self.register_buffer("proj", torch.zeros(self.in_dim, out_dim, dtype=torch.float64))

    def features(self, images):
        return area_pool_exact(to_pixel_grid(images), self.pixel_size).flatten(1)

    def project(self, feats):
        return (feats.to(self.mean) - self.mean) @ self.proj

    @torch.no_grad()
    def fit(self, train_feats, chunk: int = 16384):
        """PCA on the training features; keeps at most ``rank`` components (whitening a
        zero-variance direction would only amplify rounding noise) — out_dim shrinks if needed."""
        x = train_feats.to(torch.float64)
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"pixel_pca needs at least 2 training frames to fit PCA, got {n}")
        mean = x.mean(0)
        cov = torch.zeros(self.in_dim, self.in_dim, dtype=torch.float64)
        for s in range(0, n, chunk):  # chunked: no centred copy of all frames
            xc = x[s : s + chunk] - mean
            cov += xc.T @ xc
        cov /= n - 1
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0), evecs.flip(1)
        rank = int((evals > evals[0].clamp(min=1e-300) * 1e-9).sum())
        d = min(self.out_dim, rank)
        comps = evecs[:, :d]
        # Fix each component's sign (largest-magnitude entry positive) so the fit is reproducible.
        signs = torch.sign(comps.gather(0, comps.abs().argmax(0, keepdim=True)))
        comps = comps * signs
        if self.whiten:
            comps = comps / evals[:d].sqrt()
        self.out_dim = d
        self.mean = mean.clone()
        self.proj = comps.contiguous().clone()

    def spec(self):
        return {"name": OFFLINE_ENCODER, "pixel_size": self.pixel_size, "out_dim": self.out_dim, "whiten": self.whiten}

    @classmethod
    def from_spec(cls, spec):
        return cls(pixel_size=spec["pixel_size"], out_dim=spec["out_dim"], whiten=spec["whiten"])


class HFVisionEncoder(ImageEncoder):
    """A transformers vision model (frozen), rebuilt from its config dict with no network."""

    def __init__(self, model_type: str, config: dict, image_size: int, image_mean, image_std, source: str = ""):
        super().__init__()
        from transformers import CONFIG_MAPPING, AutoModel

        self.model_type, self.config_dict, self.source = model_type, dict(config), source
        self.image_size, self.image_mean, self.image_std = int(image_size), list(image_mean), list(image_std)
        cfg = CONFIG_MAPPING[model_type].from_dict(self.config_dict)
        self.model = AutoModel.from_config(cfg)
        self._finish()

    def _finish(self):
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.out_dim = int(self.model.config.hidden_size)
        self.register_buffer("pix_mean", torch.tensor(self.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pix_std", torch.tensor(self.image_std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def load_pretrained(cls, name: str) -> "HFVisionEncoder":
        """Load weights by Hub id or local directory; ValueError in one sentence if unavailable."""
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        try:
            cfg = AutoConfig.from_pretrained(name)
            vcfg = getattr(cfg, "vision_config", None) or cfg  # SigLIP/CLIP: the vision tower only
            model_cls = MODEL_MAPPING[type(vcfg)]
            model = model_cls.from_pretrained(name)
        except Exception as e:  # OSError offline / not found, HFValidationError, KeyError, ...
            first = first_line(e)
            raise ValueError(
                f"could not load pretrained encoder {name!r} ({first}); without network access use "
                f"--encoder={OFFLINE_ENCODER} or a local directory saved with save_pretrained"
            ) from None
        size, mean, std = cls._preprocessing(name, vcfg)
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.model_type, self.config_dict, self.source = vcfg.model_type, vcfg.to_dict(), name
        self.image_size, self.image_mean, self.image_std = size, mean, std
        self.model = model
        self._finish()
        return self

    @staticmethod
    def _preprocessing(name, vcfg) -> tuple[int, list, list]:
        """Input size and mean/std from the model's image processor when it has one, else defaults."""
        default_mean = (0.5, 0.5, 0.5) if "siglip" in vcfg.model_type else _IMAGENET_MEAN
        default_std = (0.5, 0.5, 0.5) if "siglip" in vcfg.model_type else _IMAGENET_STD
        size, mean, std = 224, default_mean, default_std
        try:
            from transformers import AutoImageProcessor

            proc = AutoImageProcessor.from_pretrained(name)
            crop = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or {}
            size = int(crop.get("height") or crop.get("shortest_edge") or size)
            mean = getattr(proc, "image_mean", None) or mean
            std = getattr(proc, "image_std", None) or std
        except Exception:  # no preprocessor_config.json (e.g. a bare save_pretrained dir): defaults
            pass
        return size, [float(v) for v in mean], [float(v) for v in std]

    def features(self, images):
        x = to_pixel_grid(images) / 255.0
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.pix_mean) / self.pix_std
        out = self.model(pixel_values=x.to(next(self.model.parameters()).dtype))
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state.mean(1)
        return F.normalize(pooled.double(), dim=-1)

    def spec(self):
        return {
            "name": "hf",
            "source": self.source,
            "model_type": self.model_type,
            "config": self.config_dict,
            "image_size": self.image_size,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "out_dim": self.out_dim,
        }

    @classmethod
    def from_spec(cls, spec):
        return cls(spec["model_type"], spec["config"], spec["image_size"], spec["image_mean"], spec["image_std"], spec.get("source", ""))


def make_encoder(name: str, pixel_size: int = 16, pca_dim: int = 64, whiten: bool = True) -> ImageEncoder:
    """An encoder by name (see ``describe_encoders``); pretrained ones load their weights here."""
    kind, target = resolve_encoder_name(name)
    if kind == "pixel_pca":
        return PixelPCAEncoder(pixel_size=pixel_size, out_dim=pca_dim, whiten=whiten)
    return HFVisionEncoder.load_pretrained(target)


def encoder_from_spec(spec: dict) -> ImageEncoder:
    if spec.get("name") == OFFLINE_ENCODER:
        return PixelPCAEncoder.from_spec(spec)
    if spec.get("name") == "hf":
        return HFVisionEncoder.from_spec(spec)
    raise ValueError(f"unknown encoder in tokenizer spec: {spec.get('name')!r}; expected '{OFFLINE_ENCODER}' or 'hf'")


class WorldTokenizer(nn.Module):
    """Frozen image encoder + codebook. All state lives in persistent buffers (or frozen params,
    requires_grad=False) so it is saved/loaded inside the policy's model.safetensors under the
    submodule prefix the policy gives it."""

    def __init__(self, encoder: ImageEncoder, vocab_size: int):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        self.encoder = encoder
        self.register_buffer("codebook", torch.zeros(vocab_size, encoder.out_dim, dtype=torch.float64))
        self.train(False)

    def train(self, mode: bool = True):
        """Always eval: the tokenizer is frozen (no dropout / drop-path when the policy trains)."""
        return super().train(False)

    @property
    def vocab_size(self) -> int:
        return int(self.codebook.shape[0])

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] float in [0,1] (or uint8) -> float64 [B, D], the embedding before quantization."""
        with torch.autocast(device_type=self.codebook.device.type, enabled=False):
            images = images.to(self.codebook.device)
            return self.encoder.project(self.encoder.features(images))

    @torch.no_grad()
    def quantize(self, emb: torch.Tensor) -> torch.Tensor:
        """Nearest codebook entry (float64, squared L2; ties -> lowest id) -> int64 [B]."""
        cb = self.codebook
        emb = emb.to(cb)
        d = (cb * cb).sum(1).unsqueeze(0) - 2.0 * (emb @ cb.T)
        return d.argmin(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """float [B,3,H,W] in [0,1] (any H, W) -> int64 [B] tokens."""
        return self.quantize(self.embed(images))

    def spec(self) -> dict:
        return {"format": SPEC_FORMAT, "vocab_size": self.vocab_size, "embed_dim": self.encoder.out_dim, "encoder": self.encoder.spec()}

    def spec_json(self) -> str:
        return json.dumps(self.spec(), sort_keys=True, default=str)

    @classmethod
    def from_spec_json(cls, spec: str) -> "WorldTokenizer":
        """Same structure and shapes as the saved one, ready for load_state_dict; no network."""
        d = json.loads(spec) if isinstance(spec, str) else dict(spec)
        if d.get("format") != SPEC_FORMAT:
            raise ValueError(f"not a world tokenizer spec: format {d.get('format')!r}, expected {SPEC_FORMAT!r}")
        enc = encoder_from_spec(d["encoder"])
        if enc.out_dim != d["embed_dim"]:
            raise ValueError(f"tokenizer spec is inconsistent: encoder out_dim {enc.out_dim} != embed_dim {d['embed_dim']}")
        return cls(enc, int(d["vocab_size"]))


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of a token histogram: the effective number of codes in use."""
    total = float(counts.sum())
    if total == 0:
        return 0.0
    p = counts.double() / total
    p = p[p > 0]
    return math.exp(float(-(p * p.log()).sum()))
