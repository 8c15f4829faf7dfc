"""Rollout videos: agent view | wrist side by side, with a text banner, streamed to MP4 by imageio.

Frames are the images the policy saw (after LeRobot's LIBERO env processor, i.e. in the dataset's
180-degree-rotated orientation). Small renders (e.g. 96 px) are upscaled by an integer factor so the
banner text stays legible; sizes are padded to a multiple of 16 so ffmpeg needs no resize.
"""

import functools
import queue
import threading
from pathlib import Path

import numpy as np

BANNER_H = 40


@functools.cache
def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def to_uint8_hwc(img) -> np.ndarray:
    """(C, H, W) float [0, 1] tensor/array -> (H, W, C) uint8 (uint8 HWC input passes through)."""
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if a.dtype == np.uint8 and a.shape[-1] == 3:
        return a
    return (np.clip(a.transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def compose_frame(
    agent: np.ndarray, wrist: np.ndarray | None, lines: list[tuple[str, tuple[int, int, int]]]
) -> np.ndarray:
    """One video frame: [agent | wrist] with ``lines`` (text, rgb colour) drawn in a banner.

    Views are uint8 HWC arrays or float CHW tensors in [0, 1] (what the policy saw).
    """
    from PIL import Image, ImageDraw

    views = [to_uint8_hwc(agent)] if wrist is None else [to_uint8_hwc(agent), to_uint8_hwc(wrist)]
    h = max(v.shape[0] for v in views)
    views = [np.pad(v, ((0, h - v.shape[0]), (0, 0), (0, 0))) for v in views]
    img = np.concatenate(views, axis=1)
    scale = max(1, int(np.ceil(224 / img.shape[0])))
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    H = img.shape[0] + BANNER_H
    W = img.shape[1]
    H16, W16 = -(-H // 16) * 16, -(-W // 16) * 16
    canvas = np.zeros((H16, W16, 3), dtype=np.uint8)
    canvas[BANNER_H : BANNER_H + img.shape[0], : img.shape[1]] = img
    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    font = _font()
    x, y = 4, 3
    for text, colour in lines:
        width = int(draw.textlength(text, font=font))
        if x > 4 and x + width > W16 - 4:  # wrap to the second banner line
            x, y = 4, y + 18
        draw.text((x, y), text, fill=colour, font=font)
        x += width + 12
    return np.asarray(pil)


class VideoWriter:
    """Streams frames to an MP4 (h264, yuv420p: plays in browsers and players).

    ``append_views`` hands (agent, wrist, banner lines) to a background thread that composes and
    encodes the frame, so a rollout step pays only for a queue put (ffmpeg runs as its own process).
    """

    def __init__(self, path: str | Path, fps: int):
        import imageio.v2 as imageio

        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = imageio.get_writer(
            str(self.path),
            fps=fps,
            codec="libx264",
            quality=None,
            macro_block_size=16,
            pixelformat="yuv420p",
            output_params=["-preset", "ultrafast", "-crf", "23"],
        )
        self.n_frames = 0

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(frame)
        self.n_frames += 1

    def append_views(self, agent: np.ndarray, wrist: np.ndarray | None, lines) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._queue = queue.Queue(maxsize=256)
            self._thread = threading.Thread(target=self._work, daemon=True)
            self._thread.start()
        self._queue.put((agent, wrist, lines))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.append(compose_frame(*item))
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = e

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def read_frames(path: str | Path) -> np.ndarray:
    """Decode an MP4 back to frames (T, H, W, 3); used by tests to prove a video is playable."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    try:
        return np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()
