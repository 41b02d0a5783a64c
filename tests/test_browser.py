"""``tests/browser.py``, the headless-Chromium harness of the page tests, on a small page made here: the screenshot
is the first 1280×800 screen, element boxes come back in document coordinates once images have loaded, and a
missing Chromium fails the test with how to install it."""

import numpy as np
import pytest
from browser import Box, above_fold, boxes, chromium, screenshot
from PIL import Image

PAGE = """<!doctype html><html><head><meta charset=utf-8><style>body{margin:0} #top{width:300px;height:120px;
background:#f00} #down{width:300px;height:120px;margin-top:2000px;background:#00f}</style></head><body>
<div id=top></div><img id=pic src="pic.png"><div id=down></div><p class=note>a</p><p class=note>b</p></body></html>"""


@pytest.fixture
def page(tmp_path):
    """The page, with a 40×30 green image beside it that the page links relatively."""
    Image.new("RGB", (40, 30), (0, 200, 0)).save(tmp_path / "pic.png")
    (tmp_path / "page.html").write_text(PAGE)
    return tmp_path / "page.html"


@pytest.mark.browser
def test_top_element_is_above_the_fold_and_one_pushed_down_is_not(page):
    found = boxes(page, ["#top", "#pic", "#down", ".note", "#absent"])
    (top,), (pic,), (down,) = found["#top"], found["#pic"], found["#down"]
    assert top == Box(0, 0, 300, 120) and above_fold(top)
    assert (pic.width, pic.height) == (40, 30) and pic.top == 120  # the relative image loaded before the probe ran
    assert down.top >= 2000 and not above_fold(down)
    assert len(found[".note"]) == 2 and found["#absent"] == []
    assert "boxes" not in page.read_text() and "base" not in page.read_text()  # a copy was probed


@pytest.mark.browser
def test_screenshot_is_the_first_screen_at_1280_by_800(page, tmp_path):
    png = screenshot(page, tmp_path / "shot.png")
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape == (800, 1280, 3)
    assert (image[60, 150] == [255, 0, 0]).all() and (image[130, 20] == [0, 200, 0]).all()
    blue = (image[..., 2] > 200) & (image[..., 0] < 50) & (image[..., 1] < 50)
    assert not blue.any()  # the element 2,000 px down is below the fold


def test_missing_chromium_fails_saying_how_to_install_it(monkeypatch):
    monkeypatch.setenv("CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium()
