"""barkbench from Python (a notebook, a script): read what the commands wrote, and train and
compare as they do.

    run = barkbench.load_run("latest")            # .config, .meta, .summary, .metrics, .samples
    study = barkbench.load_study("runs/smoke-...")  # .lines, .runs, .frontier, .frame(), .run(name)
    run = barkbench.train("echo_gpt", overrides=["train.steps=200"])
    study = barkbench.compare("smoke", jobs=2)

Where a command prints a sentence and exits, these raise it as a BarkError of the same kind
(barkbench/errors.py); progress and notes go to stderr as the commands' do. The commands `train`,
`compare` and `report` are these functions and the printing of what they return
(barkbench/commands/).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from barkbench import locate
from barkbench.display import err
from barkbench.errors import BarkError, Damaged, Interrupted, RunFailed, resumable
from barkbench.figures import BY_BUCKET, EXACT_BY_BUCKET, FIGURES, split_name
from barkbench.rundir import mend_command, problems, read_json, read_jsonl, remedy, shown_status
from barkbench.yamlfile import read_yaml


def say(line: str) -> None:
    err.print(line, highlight=False, soft_wrap=True)


# ---- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A run directory as it was when it was loaded: its config as a mapping (config.yaml),
    meta.json, summary.json (None until the run has completed), metrics.jsonl and samples.jsonl
    as lists of mappings."""

    path: Path
    config: dict = field(repr=False)
    meta: dict = field(repr=False)
    summary: dict | None = field(repr=False)
    metrics: list[dict] = field(repr=False)
    samples: list[dict] = field(repr=False)

    @property
    def status(self) -> str:
        """running, completed, failed, interrupted, or dead (marked running, its process gone)."""
        return shown_status(self.meta)


def load_run(path: str | Path, runs_dir: str | Path = "runs") -> Run:
    """The run at a path, `latest` or the start of its name under runs_dir; a damaged one is a
    Damaged error naming what is damaged and what mends it."""
    run = locate.directory(Path(path), root=Path(runs_dir))
    locate.check_directory(run, "run")
    if not (run / "config.yaml").exists():
        raise BarkError(
            f"{run} is not a barkbench run directory (it has no config.yaml); give the path of one under runs/"
        )
    if found := problems(run):
        raise Damaged(f"{run} is damaged: {'; '.join(found)}; {remedy(run)}", "; ".join(found))
    meta = read_json(run / "meta.json")
    done = shown_status(meta) == "completed"
    return Run(
        path=run,
        config=read_yaml(run / "config.yaml"),
        meta=meta,
        summary=read_json(run / "summary.json") if done else None,
        metrics=read_jsonl(run / "metrics.jsonl"),
        samples=read_jsonl(run / "samples.jsonl"),
    )


@dataclass(frozen=True)
class Study:
    """A study directory's results.json (`results`), gathered from its runs where it was missing
    or older than them, as `barkbench report` does; `written` says whether that happened now."""

    path: Path
    results: dict = field(repr=False)
    written: bool = False

    @property
    def lines(self) -> list[dict]:
        """A line per model entry and sweep cell (results.json's "models"): its settings, and each
        test figure's mean and std over seeds, by bucket too, and the sentence that says it."""
        return self.results["models"]

    @property
    def runs(self) -> list[dict]:
        """A row per run (results.json's "runs"): model, seed, sweep and tune values, status, and
        its summary figures; frame() is the same as a table."""
        return self.results["runs"]

    @property
    def frontier(self) -> list[dict]:
        """The recall-memory frontier, a point per line; empty where the lines span fewer than
        three state sizes."""
        return self.results.get("frontier") or []

    def run(self, name: str) -> Run:
        """One run of the study, by its name in the study ("gpt-s0") or its directory's."""
        row = next((r for r in self.runs if name in (r["name"], r["run"])), None)
        if row is None:
            names = ", ".join(r["name"] for r in self.runs)
            raise BarkError(f"study {self.path} has no run {name!r}; its runs are {names}")
        if row["run"] is None:
            raise BarkError(
                f"run {name} of study {self.path} has not started; "
                f"train it with: barkbench compare --resume {shlex.quote(str(self.path))}"
            )
        return load_run(self.path / row["run"])

    def frame(self):
        """A pandas DataFrame, a row per run (the rows of `runs`):

        - each sweep and tune key is a column of its own, named by its dotted key ("task.max_gap");
          keys set together ("task.min_gap,task.max_gap": [8, 8]) are a column each;
        - every figure measured on a split says which: val_loss, val_bark_accuracy, ...,
          test_loss, test_bark_accuracy, ... (summary.json leaves most validation figures
          unprefixed; figures.py's split_name says which);
        - a figure by bucket is a column per bucket, `<figure>.<bucket>`
          ("test_accuracy_by_distance.8-15"), in the order of the buckets;
        - the rest as results.json has it: name, run, model, label, group, seed, status, params,
          state_bytes, steps, selected (with tune), message (a run that did not complete), ...
        """
        try:
            import pandas
        except ImportError:
            raise BarkError(
                "Study.frame() needs pandas, which is not installed; install it with pip install 'barkbench[pandas]'"
            ) from None
        from barkbench.buckets import bucket_order

        rows, buckets = [], {}  # buckets: a by-bucket column -> (its figure's column, its bucket)
        for row in self.runs:
            flat = {}
            for key, value in row.items():
                if key in ("sweep", "tune"):
                    flat |= grid_columns(value)
                elif isinstance(value, dict):
                    figure = val_name(key, self.results.get("bucket"))
                    for bucket, figure_value in value.items():
                        flat[f"{figure}.{bucket}"] = figure_value
                        buckets[f"{figure}.{bucket}"] = (figure, bucket)
                else:
                    flat[val_name(key, self.results.get("bucket"))] = value
            rows.append(flat)
        columns = list(dict.fromkeys(column for row in rows for column in row))
        # a figure's by-bucket columns side by side, where its first one is, in the buckets' order
        start = {}
        for i, column in enumerate(columns):
            start.setdefault(buckets.get(column, (column,))[0], i)

        def place(column):
            figure, *bucket = buckets.get(column, (column,))
            return start[figure], bucket_order(bucket[0]) if bucket else 0

        ordered = sorted(columns, key=place)
        return pandas.DataFrame(rows, columns=ordered)


def grid_columns(values: dict) -> dict:
    """A row's sweep or tune values as columns: {"task.min_gap,task.max_gap": [8, 8]} is
    {"task.min_gap": 8, "task.max_gap": 8}."""
    columns = {}
    for key, value in values.items():
        keys = key.split(",")
        columns |= dict(zip(keys, value)) if len(keys) > 1 else {key: value}
    return columns


def val_name(key: str, bucket: str | None) -> str:
    """A summary key with `val_` before it if it is a validation figure that summary.json leaves
    unprefixed (bark_accuracy, accuracy_by_distance, ...); any other key as it is."""
    for figure in (*FIGURES, BY_BUCKET, EXACT_BY_BUCKET):
        if key == split_name(figure.name, "val", bucket):
            return "val_" + split_name(figure.name, "test", bucket).removeprefix("test_")
    return key


def load_study(path: str | Path, runs_dir: str | Path = "runs", force: bool = False) -> Study:
    """The study at a path, `latest` or the start of its name under runs_dir. Its results.json,
    report.md and pictures are written first where they are missing, damaged or older than its
    runs (or with force), as `barkbench report` does. A damaged run of it is a row whose status is
    `damaged` and whose message says what mends it."""
    from barkbench.study.outputs import write_outputs  # which says so of a directory without study.yaml

    directory = locate.directory(Path(path), "study", root=Path(runs_dir))
    locate.check_directory(directory, "study")
    try:
        read_json(directory / "results.json")
    except Damaged as damage:  # gathered again below
        say(f"{damage.problem}; writing it again")
    except BarkError:
        pass  # not written yet
    gathered = write_outputs(directory, force)
    return Study(directory, gathered["findings"], gathered["written"])


# ---- training -----------------------------------------------------------------------------


def train(
    config: str | Path | Mapping | None = None,
    overrides=(),
    runs_dir: str | Path = "runs",
    resume: str | Path | None = None,
) -> Run:
    """Train one model as `barkbench train` does, and return its run.

    config: a config file's path, a shipped config's name ("echo_gpt") or a mapping (a config as
    its YAML reads); overrides: dotted KEY=VALUE strings. resume: a run to go on with (its path,
    `latest` or the start of its name under runs_dir), with no config; overrides may then only
    give train.steps=N, to train a completed run on to N steps. An interrupted run raises
    Interrupted after its checkpoint is written; a run whose loss diverges raises RunFailed.
    """
    from barkbench.config import load_config, notes
    from barkbench.display import output_closed, training_progress
    from barkbench.repair import mend
    from barkbench.rundir import start_run
    from barkbench.study.job import slower
    from barkbench.tasks import task_of

    overrides, runs_dir = list(overrides), Path(runs_dir)
    start = None  # the step it resumes from
    if resume is not None:
        if config is not None:
            raise BarkError("--resume continues a run with its own config.yaml; drop --config")
        run = locate.directory(Path(resume), root=runs_dir)
        locate.check_directory(run, "run")
        cfg = resumed_config(run, overrides)
        start, mended = mend(run, cfg)
    elif config is None:
        raise BarkError("give a config with --config FILE (for example --config baby), or --resume RUN")
    else:
        cfg = load_config(config if isinstance(config, Mapping) else locate.config_path(Path(config)), overrides)
        mended = notes(cfg)
        run = start_run(cfg, runs_dir)
    from barkbench.train import train as train_run  # torch: only once the config is known to be good

    for line in [*mended, slower(cfg.threads)]:
        if line:
            say(line)
    say(f"run directory: {run}")
    if start:
        say(f"resuming from step {start} of {cfg.train.steps}")
    content = task_of(cfg.task).content
    with (
        resumable("run", mend_command(run)),
        training_progress(cfg.name, cfg.train.steps, start or 0, content) as on_step,
    ):
        # a reader that goes away (`| head`) stops the run at a checkpoint, as Ctrl-C does
        summary = train_run(run, cfg, resume=start is not None, on_step=on_step, stop_requested=output_closed)
    if summary["stopped_early"]:
        say(
            f"stopped early at step {summary['steps']} of {cfg.train.steps}: validation accuracy of the answer's "
            f"{content} {summary['bark_accuracy']:.3f} reached train.stop_at {cfg.train.stop_at}"
        )
    return load_run(run)


def resumed_config(run: Path, overrides: list[str]):
    """The config a resumed run goes on with: its own; with train.steps=N, the only override a
    resume takes, its own trained on to N steps (the cosine schedule stretched to the new end)."""
    from barkbench.config import apply_overrides, to_yaml, validate
    from barkbench.rundir import check_resumable, load_run_config, update_meta, write_atomic

    cfg = load_run_config(run)
    if not overrides:
        check_resumable(run)
        return cfg
    if len(overrides) > 1 or not overrides[0].startswith("train.steps="):
        raise BarkError(
            "--resume continues a run with its own config.yaml; the only override it takes is train.steps=N, "
            "to train a run on to N steps (drop --config and the other overrides)"
        )
    data = read_yaml(run / "config.yaml")
    cfg = validate(data, str(run / "config.yaml"), apply_overrides(data, overrides), overrides)
    meta = read_json(run / "meta.json")
    if shown_status(meta) == "running":
        check_resumable(run)  # says it is still running
    if cfg.train.steps <= meta.get("step", 0):
        raise BarkError(
            f"run {run} has trained {meta.get('step', 0)} steps already; give train.steps above that to train it on"
        )
    write_atomic(run / "config.yaml", to_yaml(cfg))
    update_meta(run, steps=cfg.train.steps)
    return cfg


def compare(
    config: str | Path | Mapping | None = None,
    overrides=(),
    runs_dir: str | Path = "runs",
    jobs: int | None = None,
    launcher: str = "local",
    address: str | None = None,
    resume: str | Path | None = None,
) -> Study:
    """Train a study as `barkbench compare` does, write its results.json, report.md and
    pictures, and return it.

    config: a compare config's path, a shipped one's name ("smoke") or a mapping (a base: path in
    it is relative to the current directory); overrides apply to its base. resume: a study to
    finish (its path, `latest` or the start of its name), with no config or overrides. Where runs
    did not complete it raises RunFailed (Interrupted, for Ctrl-C or SIGTERM) once the outputs are
    written, and the error's `study` is the Study as far as it got.
    """
    from barkbench.study.launch import launcher as launcher_named
    from barkbench.study.launch import run_study
    from barkbench.study.plan import start_study, study_file

    overrides, runs_dir = list(overrides), Path(runs_dir)
    launch = launcher_named(launcher, jobs=jobs, address=address)
    if resume is not None:
        if config is not None or overrides:
            raise BarkError("--resume continues a study with its own study.yaml; drop --config and the overrides")
        directory = locate.directory(Path(resume), "study", root=runs_dir)
        locate.check_directory(directory, "study")
        study_file(directory)
    elif config is None:
        raise BarkError("give a config with --config FILE (for example --config smoke), or --resume STUDY")
    else:
        source = config if isinstance(config, Mapping) else locate.config_path(Path(config))
        directory = start_study(source, overrides, runs_dir, say)
    say(f"study directory: {directory}")
    again = f"barkbench compare --resume {shlex.quote(str(directory))}"
    again += (f" --launcher {launcher}" if launcher != "local" else "") + (f" --address {address}" if address else "")
    with resumable("study", again):
        interrupted = run_study(directory, launch)
        study = load_study(directory)
    unfinished = [r for r in study.runs if r["status"] != "completed"]
    if interrupted:
        raise carrying(Interrupted(f"interrupted; resume with: {again}", interrupted), study)
    if unfinished:
        # a failed run's message, and a damaged one's, in report.md, say what to do; the others resume
        stopped = [r["name"] for r in unfinished if r["status"] in ("interrupted", "dead", "not started")]
        names = ", ".join(r["name"] for r in unfinished)
        raise carrying(
            RunFailed(
                f"{len(unfinished)} of {len(study.runs)} runs did not complete ({names}); report.md says why and what to do"
                + (f". Finish {', '.join(stopped)} with: {again}" if stopped else "")
            ),
            study,
        )
    return study


def carrying(error: BarkError, study: Study) -> BarkError:
    error.study = study
    return error
