"""The static page of ``convscope units`` opened from disk in Chromium: every unit's images load."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from skimage import data

from convscope.cli.main import main

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def units_out(tmp_path_factory):
    src = tmp_path_factory.mktemp("units_src")
    (src / "sub dir").mkdir()  # a space in a path: the page's relative links must still work
    for name in ("chelsea", "coffee", "astronaut"):
        img = Image.fromarray(getattr(data, name)())
        img.thumbnail((128, 128))
        img.save(src / ("sub dir" if name == "coffee" else "") / f"{name}.jpg")
    out = tmp_path_factory.mktemp("units_out")
    assert main(["units", "-i", str(src), "-o", str(out), "-m", "efficientnet_lite0", "--input-size", "64",
                 "--layer", "blocks.1", "--channels", "0-3", "--top-k", "3", "--vis", "--vis-steps", "3",
                 "--vis-size", "32", "-q"]) == 0
    return out


def test_every_unit_image_loads_from_disk(playwright_browser, units_out):
    doc = json.loads((units_out / "units.json").read_text())
    rows = doc["layers"]["blocks.1"]
    page = playwright_browser.new_page()
    try:
        page.goto((units_out / "blocks.1.html").as_uri())
        page.wait_for_load_state("load")
        units = page.locator(".unit")
        assert units.count() == len(rows) == 4
        images = page.evaluate("""() => [...document.images].map(i => ({
            src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
            channel: i.closest('.unit').dataset.channel, vis: !!i.closest('.vis')}))""")
        for row in rows:
            mine = [i for i in images if i["channel"] == str(row["channel"])]
            assert sum(not i["vis"] for i in mine) == len(row["top"]) == 3
            assert sum(i["vis"] for i in mine) == 1
            assert all(i["ok"] for i in mine), [i["src"] for i in mine if not i["ok"]]
        page.goto((units_out / "index.html").as_uri())
        page.click("text=blocks.1")
        page.wait_for_load_state("load")
        assert page.locator(".unit").count() == 4
    finally:
        page.close()
