"""The source root must not shadow the standard library, and the families must not import ray."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_dir_has_no_init():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_reachable_from_repo_root():
    code = "import platform, sys; print(platform.system()); assert 'genlab' not in platform.__file__"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}


def test_families_do_not_import_ray():
    code = ("import sys; import genlab.autoencoders, genlab.autoencoders.train, genlab.autoencoders.figures, "
            "genlab.eval.fld, genlab.eval.fld_reference, genlab.eval.likelihood, genlab.data, genlab.core.runtime, "
            "genlab.gan.train, genlab.gan.figures, genlab.gan.evaluate, genlab.diffusion.train, "
            "genlab.diffusion.figures, genlab.diffusion.evaluate, genlab.eval.compare, genlab.eval.sample_quality, "
            "genlab.rl, genlab.rl.dqn, genlab.rl.reinforce, genlab.rl.figures, genlab.rl.report, genlab.eval.rl, "
            "genlab.meta, genlab.meta.train, genlab.meta.data, genlab.data.glyphs, genlab.data.omniglot, "
            "genlab.eval.fewshot, genlab.data.captions, genlab.multimodal, genlab.multimodal.train, "
            "genlab.multimodal.embed, genlab.multimodal.index, genlab.multimodal.figures, genlab.eval.retrieval, "
            "genlab.serve.media, genlab.pipeline, genlab.pipeline.train, genlab.pipeline.evaluate, "
            "genlab.pipeline.figures; "
            "bad = [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_only_genlab_serve_imports_ray_serve():
    pattern = re.compile(r"^\s*(from ray import serve|import ray\.serve|from ray\.serve)", re.M)
    package = ROOT / "platform" / "genlab"
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.parent.name != "serve" and pattern.search(p.read_text())]
    assert not offenders, offenders


def test_importing_the_figure_modules_leaves_the_matplotlib_backend_alone():
    """A notebook's backend (inline) must survive `import genlab...figures`: a module that calls
    matplotlib.use("Agg") at import makes every later plt.show() show nothing."""
    import subprocess
    import sys

    code = ("import matplotlib, genlab.core.plotting, genlab.rl.figures, genlab.multimodal.figures, "
            "genlab.autoencoders.figures, genlab.diffusion.figures, genlab.gan.figures, genlab.pipeline.figures; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "MPLBACKEND": "svg"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().lower() == "svg"
