"""Finding what a command line names: a config by its path or by the bare name of a shipped one
(package data, so it works after a plain `pip install`, from any directory), and a run or study
directory by its path, by `latest`, or by a unique prefix of its name; and the same lists for
shell completion."""

from __future__ import annotations

import os
from pathlib import Path

from barkbench.errors import BarkError

SHIPPED = Path(__file__).resolve().parent / "configs"


def runs_root() -> Path:
    """Where run and study directories are made and looked for by name, unless --runs-dir says:
    $BARKBENCH_RUNS_DIR, or runs/ under the current directory."""
    return Path(os.environ.get("BARKBENCH_RUNS_DIR") or "runs")


def shipped_configs() -> dict[str, Path]:
    """The shipped configs by name: "baby", "echo_gpt", ... and the compare configs, "smoke", ..."""
    return {path.stem: path for path in sorted(SHIPPED.glob("*.yaml")) + sorted(SHIPPED.glob("compare/*.yaml"))}


def purpose(path: Path) -> str:
    """A shipped config's one-line purpose: the first line of its header comment."""
    first = path.read_text().splitlines()[0]
    return first.lstrip("# ").strip() if first.startswith("#") else ""


def config_path(given: Path, where: Path | None = None) -> Path:
    """The config file a --config names (or a compare config's base:, a path relative to `where`,
    the compare config's folder): a path, or else the bare name of a shipped config."""
    path = where / given if where is not None else given
    if path.exists():
        return path
    shipped = shipped_configs().get(given.name.removesuffix(".yaml")) if given.parent == Path(".") else None
    if shipped is None:
        raise BarkError(
            f"config file '{path}' does not exist; check the path, or give the name of a shipped config "
            "(barkbench configs lists them)"
        )
    return shipped


def run_dirs(root: Path) -> list[Path]:
    """Run and study directories under root, study runs too, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir()] + [p for p in root.glob("*/*") if (p / "meta.json").exists()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def directory(given: Path, what: str = "run", root: Path | None = None) -> Path:
    """The run (or study) directory a command line names: a path; `latest`, the newest under root
    (default: runs_root()), a study's runs included; or a prefix of the name of exactly one
    directory there. What `latest` or a prefix picks is said on stderr. Anything else comes back
    as given, for the command to say it does not exist."""
    from barkbench.display import err

    root = root or runs_root()
    if given.exists() or given.parent != Path("."):
        return given
    marker = "study.yaml" if what == "study" else "meta.json"
    candidates = [p for p in run_dirs(root) if (p / marker).exists()]
    if given.name == "latest":
        if not candidates:
            raise BarkError(f"there is no {what} directory under {root}/ yet, so no latest one")
        picked = candidates[-1]
    else:
        matches = [p for p in candidates if p.name.startswith(given.name)]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise BarkError(f"'{given}' is the start of {len(matches)} {what} names ({names}); give more of it")
        if not matches:
            return given
        picked = matches[0]
    err.print(f"{given}: {picked}", highlight=False, soft_wrap=True)
    return picked


def check_directory(path: Path, what: str) -> None:
    if not path.is_dir():
        raise BarkError(f"{what} directory '{path}' does not exist; give the path of one under runs/")


# ---- shell completion (typer calls these with what has been typed so far) ----------------------


def complete_runs(incomplete: str) -> list[str]:
    """`latest`, the names of the directories in runs/ (which `directory` takes as they are) and their paths."""
    root = runs_root()
    found = list(reversed(run_dirs(root)))
    names = ["latest"] + [p.name for p in found if p.parent == root] + [str(p) for p in found]
    return [name for name in names if name.startswith(incomplete)]


def complete_configs(incomplete: str) -> list[str]:
    local = [str(p) for p in sorted(Path(".").glob("**/*.yaml")) if "runs" not in p.parts][:50]
    return [name for name in [*shipped_configs(), *local] if name.startswith(incomplete)]
