# Copyright (c) 2026 JCAS bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Benchmark of the JCAS core: linear against naive DAR, JCAS training steps against plain cross-entropy, and 3D
sliding-window inference with and without DAR.

Usage::

    python -m benchmarks.core [--out docs/benchmarks/core.md] [--repeats 5] [--device cpu]
    python -m benchmarks.core --skip-dar --skip-2d --repeats 3 --out docs/benchmarks/core_3d.md

Prints Markdown tables (DAR, a 2D and a 3D training step, 3D sliding-window inference per volume) and writes them to
``--out``. Every case is timed in the same run, interleaved with its baseline, and reported as a median with its ratio
to the baseline, because shared machines are noisy. Peak memory is CUDA's ``max_memory_allocated`` on a GPU and, on a
Linux CPU, the growth of the peak resident set size while the case runs once in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.data.utils import dense_patch_slices
from monai.inferers import SlidingWindowInferer
from monai.inferers.utils import _get_scan_interval  # the interval SlidingWindowInferer itself uses
from monai.networks.nets import UNet
from scripts.dar import dar_rectify, dar_rectify_naive
from scripts.losses import CALCLoss
from scripts.network import JCASNet

BUNDLE_ROOT = Path(__file__).resolve().parents[1]
DAR_GRIDS = [(32, 32), (64, 64), (128, 128), (16, 16, 16), (32, 32, 32)]
NAIVE_BUDGET_BYTES = 8 * 2**30  # naive DAR only where its N×N tensors (about 6 of them, with gradients) fit


def jcas_loss(
    classes: int, prior: torch.Tensor, correction: bool, pairs: int | None = None, **weights: float
) -> CALCLoss:
    """The CALC loss a default training run uses: ``configs/train.json``'s ``lambda_*`` weights (so a timed
    correction step computes every term, the Dice term included), with ``weights`` overriding them."""
    config = json.loads((BUNDLE_ROOT / "configs" / "train.json").read_text())
    keys = ("lambda_affinity", "lambda_volume", "lambda_consistency", "lambda_dice")
    defaults = {key: float(config[key]) for key in keys}
    return CALCLoss(classes, prior, correction=correction, affinity_pairs=pairs, **{**defaults, **weights})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dar_case(grid: tuple[int, ...], naive: bool, device: torch.device, batch: int, classes: int, channels: int):
    """Inputs and a forward+backward closure of DAR on one grid."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, *grid, generator=gen).to(device).requires_grad_()
    embedding = torch.randn(batch, channels, *grid, generator=gen).to(device).requires_grad_()
    fn = dar_rectify_naive if naive else dar_rectify

    def step() -> None:
        fn(logits, embedding).square().sum().backward()

    return step


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak extra memory (bytes) of one call of ``step``: CUDA's peak allocation on a GPU; on Linux CPUs, the peak
    resident set size (VmHWM, reset through /proc/self/clear_refs) above the resident size before the call."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current resident size
        base = _proc_status_bytes("VmRSS")
        step()
        return float(_proc_status_bytes("VmHWM") - base)
    except OSError:
        return float("nan")


def dar_peak_memory(grid: tuple[int, ...], naive: bool, device: torch.device, batch: int, classes: int, channels: int):
    """Peak extra memory (bytes) of one DAR forward+backward. On the CPU it runs in a fresh process where glibc maps
    every allocation over 64 KiB on its own, so freed tensors leave the resident set and the peak is the tensors'."""
    if device.type == "cuda":
        return peak_memory(_dar_case(grid, naive, device, batch, classes, channels), device)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    case = ["--memory-case", ",".join(map(str, grid)), str(int(naive)), str(batch), str(classes), str(channels)]
    cmd = [sys.executable, "-m", "benchmarks.core", *case]
    done = subprocess.run(cmd, env=env, cwd=BUNDLE_ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def time_interleaved(steps: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each step, run round-robin after one warm-up call each."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def dar_table(device: torch.device, repeats: int, classes: int = 4, channels: int = 64) -> list[str]:
    rows = [
        "| grid | N | batch | linear fwd+bwd (ms) | naive fwd+bwd (ms) | speed-up | linear peak (MiB) "
        "| naive peak (MiB) | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for grid in DAR_GRIDS:
        batch = 4 if len(grid) == 2 else 2
        n = 1
        for s in grid:
            n *= s
        fits = 6 * batch * n * n * 4 < NAIVE_BUDGET_BYTES
        steps = {"linear": _dar_case(grid, False, device, batch, classes, channels)}
        if fits:
            steps["naive"] = _dar_case(grid, True, device, batch, classes, channels)
        times = time_interleaved(steps, repeats, device)
        mem = {name: dar_peak_memory(grid, name == "naive", device, batch, classes, channels) for name in steps}
        naive_t = f"{1e3 * times['naive']:.1f}" if fits else "does not fit"
        naive_m = f"{mem['naive'] / 2**20:.1f}" if fits else "-"
        speed = f"{times['naive'] / times['linear']:.1f}×" if fits else "-"
        ratio = f"{mem['naive'] / max(mem['linear'], 1.0):.0f}×" if fits else "-"
        label = "×".join(map(str, grid))
        rows.append(
            f"| {label} | {n} | {batch} | {1e3 * times['linear']:.1f} | {naive_t} | {speed} "
            f"| {mem['linear'] / 2**20:.1f} | {naive_m} | {ratio} |"
        )
        print(rows[-1], flush=True)
    return rows


def _train_step(net: torch.nn.Module, loss_fn: torch.nn.Module | Callable, x: torch.Tensor, y: torch.Tensor):
    params = list(net.parameters()) + (list(loss_fn.parameters()) if isinstance(loss_fn, torch.nn.Module) else [])
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        optimizer.step()

    return step


def train_step_table(
    device: torch.device, repeats: int, channels: tuple[int, ...], size=(256, 320), batch: int = 4, classes: int = 4
) -> list[str]:
    def backbone(out_channels: int) -> UNet:
        torch.manual_seed(0)
        strides = (2,) * (len(channels) - 1)
        return UNet(2, 3, out_channels, channels, strides, num_res_units=2).to(device)

    x = torch.rand(batch, 3, *size, device=device)
    y = torch.randint(0, classes, (batch, 1, *size), device=device)
    prior = torch.tensor([0.7, 0.1, 0.1, 0.1])
    feat = channels[0]

    def jcas(grid: int, correction: bool, pairs: int | None = None, **weights: float):
        net = JCASNet(backbone(feat), feat, classes, affinity_grid=grid).to(device).train()
        return _train_step(net, jcas_loss(classes, prior, correction, pairs, **weights).to(device), x, y)

    baseline = "same backbone + 1×1 class head, cross-entropy (baseline)"
    plain_net = JCASNet(backbone(feat), feat, classes, affinity_grid=32, use_dar=False).to(device).train()
    steps = {
        f"UNet with {classes} output channels, cross-entropy": _train_step(
            backbone(classes).train(), lambda out, t: F.cross_entropy(out, t[:, 0]), x, y
        ),
        baseline: _train_step(plain_net, lambda out, t: F.cross_entropy(out["logits"], t[:, 0]), x, y),
        "JCAS warm-up, grid 32², exact L_A": jcas(32, False),
        "JCAS correction, grid 32², exact L_A (default)": jcas(32, True),
        "JCAS correction, grid 32², exact L_A, without the Dice term": jcas(32, True, lambda_dice=0.0),
        "JCAS correction, grid 64², exact L_A": jcas(64, True),
        "JCAS correction, grid 64², 16384 sampled pairs": jcas(64, True, 16384),
    }
    times = time_interleaved(steps, repeats, device)
    base = times[baseline]
    rows = ["| training step | time (s) | ratio to baseline |", "|---|---|---|"]
    rows += [f"| {name} | {t:.3f} | {t / base:.2f}× |" for name, t in times.items()]
    for row in rows[2:]:
        print(row, flush=True)
    return rows


STEP_3D_CASES = {
    "ce": "same 3D backbone + 1×1 class head, cross-entropy (baseline)",
    "jcas": "JCAS correction stage, grid 32³, 65536 sampled pairs (train_3d.json)",
}


def _step_3d(case: str, device: torch.device, patch: int, batch: int, channels: tuple[int, ...], classes: int = 3):
    """A closure of one 3D training step on a ``patch``³ batch: the baseline or JCAS (see :data:`STEP_3D_CASES`)."""
    torch.manual_seed(0)
    x = torch.rand(batch, 1, patch, patch, patch, device=device)
    y = torch.randint(0, classes, (batch, 1, patch, patch, patch), device=device)
    feat = channels[0]
    backbone = UNet(3, 1, feat, channels, (2,) * (len(channels) - 1), num_res_units=2)
    net = JCASNet(backbone, feat, classes, spatial_dims=3, affinity_grid=32, use_dar=case == "jcas").to(device)
    if case == "ce":
        return _train_step(net.train(), lambda out, t: F.cross_entropy(out["logits"], t[:, 0]), x, y)
    prior = torch.full((classes,), 1.0 / classes)
    loss = jcas_loss(classes, prior, correction=True, pairs=65536).to(device)
    return _train_step(net.train(), loss, x, y)


def step_3d_peak_memory(case: str, device: torch.device, patch: int, batch: int, channels: tuple[int, ...]) -> float:
    """Peak extra memory (bytes) of one 3D training step (after a first one), in a fresh process on the CPU."""
    if device.type == "cuda":
        step = _step_3d(case, device, patch, batch, channels)
        step()
        return peak_memory(step, device)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, "-m", "benchmarks.core", "--memory-step3d", case, str(patch), str(batch)]
    cmd += ["--channels", *map(str, channels)]
    done = subprocess.run(cmd, env=env, cwd=BUNDLE_ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def step_3d_table(device: torch.device, repeats: int, channels: tuple[int, ...], patch: int, batch: int) -> list[str]:
    """Markdown rows: time and peak memory of a JCAS 3D training step against the same backbone's cross-entropy."""
    steps = {name: _step_3d(case, device, patch, batch, channels) for case, name in STEP_3D_CASES.items()}
    times = time_interleaved(steps, repeats, device)
    memory = {name: step_3d_peak_memory(case, device, patch, batch, channels) for case, name in STEP_3D_CASES.items()}
    base = STEP_3D_CASES["ce"]
    rows = ["| training step | time (s) | ratio | peak memory (MiB) | ratio |", "|---|---|---|---|---|"]
    for name in steps:
        t, m = times[name], memory[name]
        rows.append(f"| {name} | {t:.2f} | {t / times[base]:.2f}× | {m / 2**20:.0f} | {m / memory[base]:.2f}× |")
    for row in rows[2:]:
        print(row, flush=True)
    return rows


SW_CASES = {
    "plain": "same 3D backbone + 1×1 class head, softmax (baseline)",
    "jcas": "JCAS network, eval output (DAR on the 32³ grid)",
}


def common_3d_window() -> tuple[list[int], float, int]:
    """``patch_size``, ``sw_overlap`` and ``sw_batch_size`` of ``configs/common_3d.json``: the sliding window that
    validation, evaluation and inference use."""
    config = json.loads((BUNDLE_ROOT / "configs" / "common_3d.json").read_text())
    return list(config["patch_size"]), float(config["sw_overlap"]), int(config["sw_batch_size"])


def window_count(size: Sequence[int], roi: Sequence[int], overlap: float) -> int:
    """Windows MONAI's sliding window visits on a volume of ``size`` (padded to the window where smaller), counted
    with MONAI's own scan interval and patch slices."""
    padded = [max(n, r) for n, r in zip(size, roi, strict=True)]
    interval = _get_scan_interval(padded, roi, len(roi), (overlap,) * len(roi))
    return len(dense_patch_slices(padded, roi, interval))


def _sw_network(case: str, device: torch.device, channels: tuple[int, ...], roi: Sequence[int], classes: int = 3):
    """The network of one sliding-window case (see :data:`SW_CASES`) in eval mode: class probabilities out."""
    torch.manual_seed(0)
    feat = channels[0]
    backbone = UNet(3, 1, feat, channels, (2,) * (len(channels) - 1), num_res_units=2)
    if case == "plain":
        net = torch.nn.Sequential(backbone, torch.nn.Conv3d(feat, classes, 1), torch.nn.Softmax(dim=1))
    else:
        grid = [min(32, r) for r in roi]
        net = JCASNet(backbone, feat, classes, spatial_dims=3, affinity_grid=grid)
    return net.to(device).eval()


def _sw_step(inferer: SlidingWindowInferer, net: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A closure of one sliding-window prediction of ``x`` by ``net``, without gradients."""

    def step() -> None:
        with torch.inference_mode():
            inferer(x, net)

    return step


def sw_table(
    device: torch.device,
    repeats: int,
    channels: tuple[int, ...],
    sizes: Sequence[Sequence[int]],
    roi: Sequence[int],
    overlap: float,
    sw_batch_size: int,
) -> list[str]:
    """Markdown rows: seconds per volume of sliding-window inference, JCAS against the same backbone without DAR."""
    inferer = SlidingWindowInferer(roi_size=list(roi), sw_batch_size=sw_batch_size, overlap=overlap)
    nets = {name: _sw_network(case, device, channels, roi) for case, name in SW_CASES.items()}
    rows = ["| volume | windows | baseline (s) | JCAS (s) | ratio |", "|---|---|---|---|---|"]
    for size in sizes:
        x = torch.rand(1, 1, *size, device=device)

        steps = {name: _sw_step(inferer, net, x) for name, net in nets.items()}
        times = time_interleaved(steps, repeats, device)
        base, jcas = times[SW_CASES["plain"]], times[SW_CASES["jcas"]]
        label = "×".join(map(str, size))
        rows.append(f"| {label} | {window_count(size, roi, overlap)} | {base:.3f} | {jcas:.3f} | {jcas / base:.2f}× |")
        print(rows[-1], flush=True)
    return rows


def _volume_size(text: str) -> tuple[int, int, int]:
    """``XxYxZ`` (e.g. ``256x256x128``) as three ints."""
    size = tuple(int(n) for n in text.lower().replace("×", "x").split("x"))
    if len(size) != 3 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected a volume size XxYxZ, e.g. 256x256x128, got {text!r}")
    return size


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/benchmarks/core.md", help="Markdown file the tables are written to")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128, 256], help="UNet channels")
    parser.add_argument("--skip-dar", action="store_true", help="only the training-step table")
    parser.add_argument("--skip-2d", action="store_true", help="no 2D training-step table")
    parser.add_argument("--patch3d", type=int, default=96, help="3D patch size of the 3D training-step table (0: none)")
    parser.add_argument("--batch3d", type=int, default=2, help="3D patches per step")
    parser.add_argument(
        "--sw-sizes",
        type=_volume_size,
        nargs="*",
        default=[(64, 64, 48), (256, 256, 128)],
        help="volume sizes XxYxZ of the sliding-window inference table (none: no table); default: the 3D demo "
        "resampled to common_3d.json's pixdim, and a realistic CT",
    )
    parser.add_argument("--sw-roi", type=int, nargs=3, default=None, help="window size (default: common_3d.json's)")
    parser.add_argument("--memory-case", nargs=5, help=argparse.SUPPRESS)  # internal: grid naive batch C D
    parser.add_argument("--memory-step3d", nargs=3, help=argparse.SUPPRESS)  # internal: case patch batch
    args = parser.parse_args(argv)
    if args.memory_step3d:
        case, patch, batch = args.memory_step3d
        step = _step_3d(case, torch.device("cpu"), int(patch), int(batch), tuple(args.channels))
        step()  # first call: one-off allocations (optimizer state, library)
        print(peak_memory(step, torch.device("cpu")))
        return
    if args.memory_case:
        grid, naive, batch, classes, channels = args.memory_case
        step = _dar_case(
            tuple(map(int, grid.split(","))),
            bool(int(naive)),
            torch.device("cpu"),
            *map(int, (batch, classes, channels)),
        )
        step()  # first call: one-off allocations of the library
        print(peak_memory(step, torch.device("cpu")))
        return
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        "# JCAS core benchmark",
        "",
        f"`{' '.join(['python -m benchmarks.core', *argv])}` on {where}, torch {torch.__version__}.",
        "Times are medians of interleaved repeats; peak memory is the extra memory of one forward+backward.",
        "",
    ]
    if not args.skip_dar:
        lines += ["## DAR forward + backward (C = 4, D = 64), linear against naive N×N", ""]
        lines += dar_table(device, args.repeats) + [""]
    if not args.skip_2d:
        lines += [f"## One training step at 256×320, batch 4, UNet channels {tuple(args.channels)}, SGD", ""]
        lines += [
            "The baseline is the network JCAS trains without its additions: the same UNet feature extractor (its",
            f"output has {args.channels[0]} channels) and 1×1 class head, with cross-entropy. A UNet whose last layer",
            "outputs the classes directly is shown too.",
            "",
        ]
        lines += train_step_table(device, args.repeats, tuple(args.channels)) + [""]
    if args.patch3d:
        lines += [f"## One 3D training step, {args.batch3d} patches of {args.patch3d}³, 3 classes, SGD", ""]
        lines += step_3d_table(device, args.repeats, tuple(args.channels), args.patch3d, args.batch3d) + [""]
    if args.sw_sizes:
        roi, overlap, sw_batch_size = common_3d_window()
        roi = args.sw_roi or roi
        window = "×".join(map(str, roi))
        lines += [f"## Sliding-window inference per volume, {window} windows, overlap {overlap}, 3 classes", ""]
        lines += [
            f"MONAI's `SlidingWindowInferer` with `common_3d.json`'s overlap and `sw_batch_size` ({sw_batch_size}), as",
            "in validation, evaluation and inference; one single-channel volume, no gradients. The baseline is the",
            "same UNet with a 1×1 class head and a softmax; JCAS adds the embedding head and DAR on each window.",
            "",
        ]
        lines += sw_table(device, args.repeats, tuple(args.channels), args.sw_sizes, roi, overlap, sw_batch_size)
        lines += [""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
