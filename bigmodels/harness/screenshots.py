"""Screenshots of every page as a projector shows it: 1280x720, in both languages.

    BIGMODELS_DATA_DIR=../shared/mnist python -m bigmodels.harness.screenshots [--out DIR] [--size 1280x720]

Starts the app on a free loopback port with a fresh run home, opens each page
in headless Chromium (``?lang=en`` and ``?lang=zh``), waits until the script
run is done, and saves the first screen (what is in view without scrolling)
as a PNG. (Streamlit scrolls inside its own container, so a "full page"
screenshot would show the same first screen.) A page that shows an exception box is reported and
the others still run. Prints one line per picture.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bigmodels.harness.browser import SCREENSHOTS, AppPage, StreamlitExceptionShown, launch_chromium
from bigmodels.harness.server import REPO, StreamlitServer
from bigmodels.base.i18n import LANGUAGES


def page_paths() -> list[str]:
    """The url path of every page: each file in pages/ is routed under its stem."""
    return sorted(p.stem for p in (REPO / "pages").glob("*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(SCREENSHOTS / "pages"))
    parser.add_argument("--size", default="1280x720", help="viewport WIDTHxHEIGHT")
    parser.add_argument("--pages", nargs="*", help="url paths (default: every page)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bigmodels-shots-") as home, StreamlitServer(Path(home)) as server, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for lang in LANGUAGES:
            for path in args.pages or page_paths():
                context = browser.new_context(viewport={"width": width, "height": height})
                app = AppPage(context, server)
                name = f"{path or 'home'}-{lang}-{width}x{height}"
                try:
                    page = app.open("" if path == "home" else path, query=f"lang={lang}", timeout=120_000)
                    page.wait_for_timeout(2000)  # the frontend draws charts and widgets after the run ends
                    page.screenshot(path=str(out / f"{name}.png"))
                    print(f"{out / name}.png")
                except (StreamlitExceptionShown, TimeoutError) as exc:
                    failures += 1
                    print(f"{name}: {exc}", file=sys.stderr)
                finally:
                    context.close()
        browser.close()
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
