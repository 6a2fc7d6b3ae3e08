"""Does the app give memory back? Drives `streamlit run` with browser sessions that open, classify a
few real photos, and close, and samples the server's resident memory after each session.

    python benchmarks/session_memory.py --classifications 300

Writes benchmarks/session-memory.json (the samples) and benchmarks/session-memory.png (the curve).
Every session talks to the loopback address only; the run stops at --classifications or --minutes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, rss_mb, running_app  # noqa: E402

RESULT_TIMEOUT_MS = 300_000


async def one_session(browser, url: str, photos: list[Path]) -> None:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(RESULT_TIMEOUT_MS)
    try:
        page = await context.new_page()
        await page.goto(url)
        uploader = page.locator("input[type=file]")
        await uploader.wait_for(state="attached", timeout=RESULT_TIMEOUT_MS)
        await uploader.set_input_files([str(p) for p in photos])
        await expect(page.get_by_test_id("stMetricValue")).to_have_count(len(photos), timeout=RESULT_TIMEOUT_MS)
        await expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=RESULT_TIMEOUT_MS)
    finally:
        await context.close()


async def drive(url: str, server_pid: int, photos: list[Path], args) -> list[dict]:
    from playwright.async_api import async_playwright

    samples = [{"classifications": 0, "sessions": 0, "seconds": 0.0, "rss_mb": round(rss_mb(server_pid), 1)}]
    started = time.monotonic()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            done = sessions = 0
            while done < args.classifications and time.monotonic() - started < 60 * args.minutes:
                batch = []
                for _ in range(args.parallel):
                    chosen = [photos[(done + i) % len(photos)] for i in range(args.per_session)]
                    done += len(chosen)
                    batch.append(one_session(browser, url, chosen))
                await asyncio.gather(*batch)
                sessions += len(batch)
                samples.append({"classifications": done, "sessions": sessions,
                                "seconds": round(time.monotonic() - started, 1),
                                "rss_mb": round(rss_mb(server_pid), 1)})
                print(samples[-1], flush=True)
        finally:
            await browser.close()
    return samples


def draw(samples: list[dict], path: Path) -> None:
    """A plain line chart of RSS against classifications (Pillow only)."""
    from PIL import Image, ImageDraw

    width, height, margin = 720, 360, 60
    samples = [s for s in samples if s["classifications"] > 0]  # before that the model is not loaded
    xs = [s["classifications"] for s in samples]
    ys = [s["rss_mb"] for s in samples]
    low, high = min(ys) * 0.95, max(ys) * 1.05
    x_max = max(xs) or 1

    def point(x, y):
        return (margin + (width - 2 * margin) * x / x_max,
                height - margin - (height - 2 * margin) * (y - low) / (high - low or 1))

    image = Image.new("RGB", (width, height), "white")
    canvas = ImageDraw.Draw(image)
    canvas.rectangle([margin, margin, width - margin, height - margin], outline="#999999")
    canvas.line([point(x, y) for x, y in zip(xs, ys)], fill="#c0392b", width=2)
    for fraction in (0, 0.5, 1):
        value = low + fraction * (high - low)
        canvas.text((4, point(0, value)[1] - 6), f"{value:.0f} MB", fill="black")
        canvas.text((point(fraction * x_max, low)[0] - 10, height - margin + 8), f"{fraction * x_max:.0f}", fill="black")
    canvas.text((margin, 20), "streamlit server RSS (MB) against classifications, sessions opening and closing",
                fill="black")
    canvas.text((width // 2 - 40, height - 24), "classifications", fill="black")
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "melanoma-resnet50"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "ham10000"))
    parser.add_argument("--classifications", type=int, default=300)
    parser.add_argument("--per-session", type=int, default=3, help="photos each session uploads")
    parser.add_argument("--parallel", type=int, default=2, help="sessions open at once")
    parser.add_argument("--minutes", type=float, default=30, help="stop after this long in any case")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "session-memory"))
    args = parser.parse_args()
    photos = sorted((Path(args.data) / "images").glob("*.jpg"))[:args.classifications]
    with running_app(Path(args.model), Path(args.data), ARTIFACTS / "session-memory-server.log") as (url, server, _):
        samples = asyncio.run(drive(url, server.pid, photos, args))
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(samples, indent=1) + "\n")
    draw(samples, out.with_suffix(".png"))
    print(f"written to {out}.json and {out}.png")


if __name__ == "__main__":
    main()
