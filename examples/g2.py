"""XPCS G2 autocorrelation next to the data, with h5pyvol.analysis.execute.

For a stack of detector frames I(t, y, x), the intensity autocorrelation per
pixel at delay tau is

    G2(tau) = <I(t) I(t+tau)> / (<I(t)> <I(t+tau)>),   averages over t < T - tau,

for pixels the mask file keeps (value 1; 0 excludes a pixel, whose G2 is NaN).
The stack is stored chunked by pixels, (T, cy, cx): each map gets every time
of a block of pixels, computes their G2 for all delays where the chunk is,
and returns only that (D x cy x cx) result; combine assembles the picture.

    python examples/g2.py --url "rados://h5pyvol/xpcs.h5?conf=ceph.conf&keyring=keyring" \\
        --frames 256 --height 128 --width 128 --delays 1,2,4,8,16 --check

writes a synthetic speckle stack (each pixel an AR(1) process, so G2 decays
as 1 + rho^(2 tau)) unless --no-write, runs the analysis and, with --check,
compares it with a brute-force computation, pixel by pixel.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def g2_of(frames: np.ndarray, delays: list[int]) -> np.ndarray:
    """G2 for every pixel of `frames` (T, ...) at each delay: (D, ...).

    One pass per delay over the block: the products summed over time without
    a temporary (einsum), the means from the total minus the few frames a
    delay leaves out."""
    t = frames.shape[0]
    x = frames.astype(np.float64, copy=False)
    total = x.sum(axis=0)
    out = np.empty((len(delays),) + frames.shape[1:], np.float64)
    for k, tau in enumerate(delays):
        n = t - tau
        num = np.einsum("i...,i...->...", x[:n], x[tau:]) / n
        den = ((total - x[n:].sum(axis=0)) / n) * ((total - x[:tau].sum(axis=0)) / n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)
    return out


class G2Map:
    """The map: one chunk of pixels (all times) -> its G2, NaN where masked."""

    def __init__(self, delays: list[int]):
        self.delays = [int(d) for d in delays]

    def __call__(self, block) -> tuple:
        g2 = g2_of(block["frames"], self.delays)
        g2[:, block["mask"] == 0] = np.nan
        return tuple((s.start, s.stop) for s in block.selection[1:]), g2


class G2Combine:
    """The combine: place each chunk's G2 in the (D, Y, X) picture."""

    def __init__(self, delays: list[int], height: int, width: int):
        self.shape = (len(delays), height, width)

    def __call__(self, parts: list) -> np.ndarray:
        out = np.full(self.shape, np.nan)
        for (ys, xs), g2 in parts:
            out[:, ys[0]:ys[1], xs[0]:xs[1]] = g2
        return out


def brute_force(frames: np.ndarray, mask: np.ndarray, delays: list[int]) -> np.ndarray:
    """G2 computed pixel by pixel and delay by delay, straight from the formula."""
    t, height, width = frames.shape
    out = np.full((len(delays), height, width), np.nan)
    for y in range(height):
        for x in range(width):
            if not mask[y, x]:
                continue
            series = frames[:, y, x].astype(np.float64)
            for k, tau in enumerate(delays):
                a, b = series[: t - tau], series[tau:]
                out[k, y, x] = np.mean(a * b) / (np.mean(a) * np.mean(b))
    return out


def synthetic_stack(frames: int, height: int, width: int, rho: float = 0.9, seed: int = 0) -> np.ndarray:
    """Speckle-like intensities: |AR(1) amplitude|^2, correlated in time per pixel."""
    rng = np.random.default_rng(seed)
    amp = rng.standard_normal((height, width))
    out = np.empty((frames, height, width), np.float32)
    scale = np.sqrt(1 - rho**2)
    for t in range(frames):
        amp = rho * amp + scale * rng.standard_normal((height, width))
        out[t] = amp**2 + 0.1
    return out


def default_mask(height: int, width: int) -> np.ndarray:
    """A detector mask: a dead border and a dead column."""
    mask = np.ones((height, width), np.uint8)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0
    mask[:, width // 3] = 0
    return mask


def write_stack(dataset_file, frames: np.ndarray, chunk: tuple[int, int]):
    """Store the stack chunked by pixels: every time of a (cy, cx) block per chunk."""
    if "frames" in dataset_file:
        del dataset_file["frames"]
    return dataset_file.create_dataset("frames", data=frames, chunks=(frames.shape[0], *chunk))


def run(frames_ds, mask: np.ndarray, delays: list[int], engine: str = "processes", **options):
    """G2 of a stored stack through execute; returns the Result (value: (D, Y, X))."""
    from h5pyvol.analysis import execute

    _, height, width = frames_ds.shape
    return execute(G2Map(delays), G2Combine(delays, height, width), {"frames": frames_ds, "mask": mask},
                   engine=engine, **options)


def main(argv: list[str] | None = None) -> int:
    import h5py

    import h5pyvol
    from h5pyvol.analysis.sources import Source, parse_url
    from h5pyvol.registry import ConnectorSpec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--url", default="memory://xpcs.h5", help="file URL (rados://..., s3://..., a path)")
    parser.add_argument("--frames", type=int, default=128, help="frames T of the synthetic stack (default 128)")
    parser.add_argument("--height", type=int, default=64, help="detector rows Y (default 64)")
    parser.add_argument("--width", type=int, default=64, help="detector columns X (default 64)")
    parser.add_argument("--chunk", default="16,16", help="pixels per chunk, cy,cx")
    parser.add_argument("--delays", default="1,2,4,8", help="comma-separated delays, in frames")
    parser.add_argument("--mask", help="a .npy file of 0/1 (shape height x width); default: a dead border and column")
    parser.add_argument("--engine", default="processes", choices=["serial", "processes", "mpi", "dask"])
    parser.add_argument("--no-write", action="store_true", help="use the stack already stored at --url")
    parser.add_argument("--check", action="store_true", help="compare with the brute-force computation")
    parser.add_argument("--output", help="write G2 and the delays to this native HDF5 file")
    args = parser.parse_args(argv)

    delays = [int(d) for d in args.delays.split(",")]
    spec, name = parse_url(args.url)
    source = Source(spec, name, "/frames")
    if not args.no_write:
        stack = synthetic_stack(args.frames, args.height, args.width)
        if spec is None:
            f = h5py.File(name, "w")
        else:
            parsed = ConnectorSpec.parse(spec)
            f = h5pyvol.File(name, "w", parsed.name, **dict(parsed.options))
        with f:  # a memory file lives on, by name, after it is closed
            write_stack(f, stack, tuple(int(c) for c in args.chunk.split(",")))
    f = source.open_file()
    frames_ds = f["frames"]
    _, height, width = frames_ds.shape
    mask = np.load(args.mask) if args.mask else default_mask(height, width)
    if mask.shape != (height, width) or not np.isin(mask, (0, 1)).all():
        print(f"g2: the mask must be 0/1 of shape {(height, width)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = run(frames_ds, mask, delays, engine=args.engine, progress=True)
    print(f"G2 of {frames_ds.shape} for delays {delays} in {time.perf_counter() - t0:.2f} s; "
          f"{result.stats['shards']} shards, {result.stats['bytes_returned']} bytes returned")
    for k, tau in enumerate(delays):
        print(f"  tau={tau:4d}: mean G2 over unmasked pixels = {np.nanmean(result.value[k]):.4f}")
    if args.check:
        expected = brute_force(frames_ds[...], mask, delays)
        ok = np.allclose(result.value, expected, rtol=1e-6, equal_nan=True)
        print("check against brute force:", "OK" if ok else "MISMATCH")
        if not ok:
            return 1
    if args.output:
        with h5py.File(args.output, "w") as out:
            out["G2"] = result.value
            out["delays"] = delays
    return 0


if __name__ == "__main__":
    sys.exit(main())
