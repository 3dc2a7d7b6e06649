"""The short-run notebooks re-executed with papermill on the smoke profile, and the book built offline."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import papermill
import pytest

from ldm.book import runner as book
from ldm.config import load_profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """A copy of the book sources in a temporary folder, executed on smoke and built with -W."""
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "notebooks"))
    timings = {name: book.run_notebook(name, "smoke", str(root / "runs" / "smoke"), root=root)
               for name in book.toc_notebooks(root)}
    html = book.build_html(root)
    return root, html, timings


def test_toc_lists_the_notebooks_in_order():
    names = book.toc_notebooks()
    assert names[0] == "01_preprocessing"
    for name in names:
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file()


def test_source_notebooks_are_stripped_and_parameterised():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), path
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells), f"{path}: outputs"
        params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert 'profile = "demo"' in "".join(params["source"]), "the book's default profile is demo"
        # every parameter is one papermill can read (a second "=" in its comment made it skip the line, with
        # a warning in the book's log, and left the parameter out of `papermill --help-notebook`)
        names = {m.group(1) for m in re.finditer(r"^(\w+)\s*=", "".join(params["source"]), re.M)}
        read = set(papermill.inspect_notebook(str(path)))
        assert names == read, f"{path.name}: papermill cannot read {sorted(names - read)}"


# notebooks are narrative, parameters, calls into ldm and plots: logic lives in ldm, where it is tested
MAX_CODE_LINES = 70


def test_notebooks_are_thin():
    import ast

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        lines = [ln for cell in code for ln in cell.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        assert len(lines) <= MAX_CODE_LINES, f"{path.name}: {len(lines)} code lines"
        defined = [n for cell in code for n in ast.walk(ast.parse(cell))
                   if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)]
        assert not defined, f"{path.name}: defines {[getattr(n, 'name', 'lambda') for n in defined]}"
        spelled = re.findall(r"""["'/](?:runs|models|results|preprocessed|samples)/""", "\n".join(lines))
        assert not spelled, f"{path.name}: run-folder paths spelled out {spelled} (use ldm.run.Run)"


def _outputs(root, name):
    executed = json.loads((root / "book" / "notebooks" / f"{name}.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], name
    return outputs, [o for o in outputs if "image/png" in o.get("data", {})]


@pytest.mark.slow
def test_preprocessing_notebook_runs_on_smoke(built_book):
    root, _, _ = built_book
    _, images = _outputs(root, "01_preprocessing")
    assert len(images) >= 3, "covariates, registration and QC figures"
    manifest = pd.read_csv(root / "runs" / "smoke" / "preprocessed" / "manifest.tsv", sep="\t")
    assert (manifest["status"] == "ok").all()


@pytest.mark.slow
def test_training_notebooks_run_on_smoke(built_book):
    root, _, _ = built_book
    run = root / "runs" / "smoke"
    _, images = _outputs(root, "02_train_autoencoder")
    assert len(images) == 2, "loss curves and reconstructions"
    metrics = json.loads((run / "results" / "autoencoder.json").read_text())
    assert metrics["profile"] == "smoke" and 0 < metrics["l1"] < 1 and "perceptual: none" in metrics["weights"]
    _, images = _outputs(root, "03_train_diffusion")
    assert len(images) == 3, "loss curve and samples with guidance on and off"
    for w in (1.5, 1.0):  # the smoke profile's guidance scale, and guidance off
        folder = run / "samples" / f"chapter3_w{w:g}"
        samples = pd.read_csv(folder / "samples.tsv", sep="\t")
        assert len(samples) == 6 and samples["file"].is_unique and (samples["guidance_scale"] == w).all()
        assert all((folder / f).is_file() for f in samples["file"])
        assert set(samples["age"]) == {50, 64, 78}


@pytest.mark.slow
def test_book_builds_offline_with_the_pages(built_book):
    _, html, _ = built_book
    pages = {p.relative_to(html).as_posix() for p in html.rglob("*.html")}
    assert {"book/intro.html", "book/methods.html", "book/notebooks/01_preprocessing.html"} <= pages
    methods = (html / "book" / "methods.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml.js"' in methods, "MathJax must be served from the book"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in pages:
        text = (html / page).read_text()
        assert "cdn.jsdelivr.net/npm/mathjax" not in text and "polyfill.io" not in text, page
    page = (html / "book" / "notebooks" / "01_preprocessing.html").read_text()
    assert page.count("<img") >= 3 and "profile smoke" in page


@pytest.mark.slow
def test_evaluation_notebooks_fill_their_results_on_smoke(built_book):
    root, html, _ = built_book
    results = root / "runs" / "smoke" / "results"
    _, images = _outputs(root, "04_sampling_quality")
    assert len(images) == 1, "Fig. 1"
    table = json.loads((results / "table1.json").read_text())
    fast = f"LDM + DPM-Solver++ {load_profile('smoke').sampling.dpm_steps}"  # the profile's step count
    assert set(table["rows"]) == {"LSGAN", "VAE-GAN", "LDM", "LDM + DDIM", fast, "Real images"}
    noise = f"white noise (sd {table['noise_sd_training_images']:.3f})"
    assert set(table["diagnostics"]) == {"Autoencoder reconstructions", "Real images blurred (sd 0.5 voxel)",
                                         *(f"{s} + {noise}" for s in ("Real images", "Autoencoder reconstructions",
                                                                      "LDM + DDIM", "LSGAN"))}
    gap = table["fid_noisy_ldm_minus_lsgan"]
    assert gap["ci95"][0] <= gap["difference"] <= gap["ci95"][1]
    assert set(table["gan_weights"]) == {"LSGAN", "VAE-GAN"}  # smoke ships none: trained in the run
    assert (root / "runs" / "smoke" / "models" / "lsgan.pt").is_file()
    assert table["feature_extractor"].startswith("FALLBACK"), "no MedicalNet weights in CI: the fallback is named"
    for row in table["rows"].values():
        assert row["fid"] >= 0 and 0 < row["ms_ssim"] <= 1 and 0 <= row["4_g_r_ssim"] <= 1
    page = (html / "book" / "notebooks" / "04_sampling_quality.html").read_text()
    assert "FALLBACK" in page and "0.0076" in page, "our FID named by its extractor, the paper's beside it"
    _, images = _outputs(root, "05_conditioning")
    assert len(images) == 3, "Fig. 2 and both panels of Fig. 3"
    cond = json.loads((results / "conditioning.json").read_text())
    assert {"ventricle_r_guidance_1", "ventricle_r_guidance_1.5", "age_r_guidance_1", "age_r_guidance_1.5"} <= set(cond)
    assert cond["brain_age_on_real"]["n"] > 0 and cond["machine"]
    assert json.loads((results / "ventricle_measure.json").read_text())["n"] > 0
    _, images = _outputs(root, "06_extrapolation")
    assert len(images) == 2, "Fig. 4 and the measured extrapolation"
    extra = json.loads((results / "extrapolation.json").read_text())
    assert {m["input"] for m in extra["measurements"]} == {-0.5, 0.0, 0.5, 1.0, 1.5, 1.9}


@pytest.mark.slow
def test_interactive_chapter_shows_a_gallery_in_the_static_book(built_book):
    root, html, _ = built_book
    _, images = _outputs(root, "07_interactive")
    assert len(images) == 2, "coronal and axial galleries"
    page = (html / "book" / "notebooks" / "07_interactive.html").read_text()
    assert "Voila" in page and "jupyter-widgets/html-manager" not in page, "no widget manager from a CDN"


@pytest.mark.slow
def test_privacy_chapter_audits_the_model_and_its_control(built_book):
    root, html, _ = built_book
    _, images = _outputs(root, "08_privacy")
    assert len(images) == 2, "similarity histograms and closest pairs"
    rec = json.loads((root / "runs" / "smoke" / "results" / "privacy.json").read_text())
    assert rec["n_samples"] == len(rec["sample_ncc"]) == 4 and len(rec["control_ncc"]) == rec["n_control"] == 4
    assert 0 <= rec["flag_rate"] <= 1 and 0 <= rec["control_flag_rate"] <= 1 and -1 <= rec["threshold"] <= 1
    assert "over-fitted control: 2 subjects, 20 steps" in rec["control_weights"]
    # the blur-matched reference: test subjects through the autoencoder
    assert len(rec["recon_test_ncc"]) == len(rec["test_ncc"])
    assert max(rec["recon_test_ncc"]) == rec["threshold_reconstructions"]
    assert 0 <= rec["flag_rate_reconstructions"] <= 1 and 0 <= rec["control_flag_rate_reconstructions"] <= 1
    page = (html / "book" / "notebooks" / "08_privacy.html").read_text()
    assert "does not prove privacy" in page


@pytest.mark.slow
def test_paper_numbers_page_lists_every_number(built_book):
    from ldm.numbers import PAPER_NUMBERS, paper_numbers

    root, html, _ = built_book
    table = paper_numbers(root / "runs" / "smoke" / "results")
    assert len(table) >= len(PAPER_NUMBERS) and set(table["profile"]) == {"smoke"}
    assert not (table["ours"].astype(str) == "not measured yet").any(), table[["quantity", "ours"]]
    page = (html / "book" / "notebooks" / "09_paper_numbers.html").read_text()
    assert "0.972" in page and "0.692" in page and "142.3" in page


@pytest.mark.slow
def test_reference_pages_render(built_book):
    _, html, _ = built_book
    refs = (html / "book" / "references.html").read_text()
    for author in ("Pinaya", "Cole", "Kwon", "Mao", "Larsen", "Song"):
        assert author in refs, author
    repro = (html / "book" / "reproducing.html").read_text()
    assert "torchrun" in repro and 'href="references.html#' in repro, "citations link to the references page"


# --- a real browser ------------------------------------------------------------------------------
# .ci/run installs Debian's chromium and sets LDM_REQUIRE_BROWSER=1, so in CI a missing browser fails.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_browser = pytest.mark.skipif(not CHROMIUM and not os.environ.get("LDM_REQUIRE_BROWSER"),
                                   reason="no chromium on PATH (CI installs it)")
HARNESS = """<!doctype html><html><body><iframe id="f" src="{page}" width="1280" height="2400"></iframe>
<pre id="out">pending</pre><script>
const f = document.getElementById("f");
f.addEventListener("load", () => setTimeout(() => {{
  const d = f.contentDocument, imgs = Array.from(d.images);
  const ok = i => i.complete && i.naturalWidth > 0;
  document.getElementById("out").textContent = "RESULT " + JSON.stringify({{
    images: imgs.length, broken: imgs.filter(i => !ok(i)).map(i => i.getAttribute("src")),
    math: d.querySelectorAll("mjx-container").length,
    unrendered_math: d.querySelectorAll(".math:not(:has(mjx-container))").length}});
}}, 3000));
</script></body></html>"""


def _chromium(*args):
    assert CHROMIUM, "chromium is required here (LDM_REQUIRE_BROWSER is set) but not on PATH"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
           "--virtual-time-budget=20000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _render(page: Path) -> dict:
    """Open ``page`` in headless chromium (inside a same-folder harness page) once scripts have run:
    how many images it has, which failed to load, and how many formulas MathJax typeset."""
    harness = page.parent / f"_harness_{page.stem}.html"
    harness.write_text(HARNESS.format(page=page.name))
    try:
        dom = _chromium("--dump-dom", harness.as_uri()).stdout
    finally:
        harness.unlink()
    found = re.search(r"RESULT (\{.*?\})</pre>", dom)
    assert found, f"{page}: the page did not finish loading in the browser"
    return json.loads(found.group(1).replace("&quot;", '"'))


@needs_browser
@pytest.mark.slow
@pytest.mark.parametrize("name, min_images", [("04_sampling_quality", 1), ("05_conditioning", 3)])
def test_pages_render_in_a_real_browser(built_book, tmp_path, name, min_images):
    _, html, _ = built_book
    page = html / "book" / "notebooks" / f"{name}.html"
    got = _render(page)
    assert got["images"] >= min_images and not got["broken"], got
    assert got["math"] >= 1 and got["unrendered_math"] == 0, f"MathJax did not typeset {name}: {got}"
    shot = tmp_path / f"{name}.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    pixels = plt.imread(shot)
    assert pixels.shape[:2] == (1600, 1280) and pixels[..., :3].std() > 0.05, "a blank screenshot"
