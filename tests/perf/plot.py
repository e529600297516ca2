"""The concurrency sweep as PNG plots (matplotlib, no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the bench runs headless

import matplotlib.pyplot as plt  # after the backend is chosen


def sweep(points: dict[str, list[dict]], labels: dict[str, str], ttft_path: Path, events_path: Path) -> None:
    """points: row -> [{"concurrency", "p50", "p99", "events_per_s"}] (ms, events/s)."""
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (row, values) in enumerate(points.items()):
        if not values:
            continue
        color = f"C{i}"
        xs = [v["concurrency"] for v in values]
        ax.plot(xs, [v["p50"] for v in values], "o-", color=color, label=f"{labels[row]} p50")
        ax.plot(xs, [v["p99"] for v in values], "s--", color=color, alpha=0.7, label=f"{labels[row]} p99")
    ax.set(xscale="log", yscale="log", xlabel="concurrent streams", ylabel="time to first token, ms")
    ax.set_title("TTFT vs concurrency (provider: 20 ms per chunk)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(ttft_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (row, values) in enumerate(points.items()):
        if values:
            xs = [v["concurrency"] for v in values]
            ax.plot(xs, [v["events_per_s"] for v in values], "o-", color=f"C{i}", label=labels[row])
    ax.set(xscale="log", yscale="log", xlabel="concurrent streams", ylabel="text deltas received per second")
    ax.set_title("Streamed text deltas per second vs concurrency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(events_path)
    plt.close(fig)
