"""``export``: a trained model as plain Keras, a TensorFlow SavedModel, ONNX or LiteRT, each
run in its own runtime on the model's test images and compared with the Keras model."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from fmnist_search.cli import options
from fmnist_search.cli.common import SharedOptions, console, err_console, is_stdout


def add_export(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    from fmnist_search.export import FORMATS

    p = sub.add_parser("export", parents=[shared.common],
                       help="a trained model as plain Keras, SavedModel, ONNX or LiteRT "
                       "(checked in its own runtime)")
    p.add_argument("model", metavar="MODEL",
                   help="a project (its best trial, or --trial), a baseline name, a run "
                   "directory, PROJECT-TRIAL (retrained) or PROJECT-ensemble")
    p.add_argument("--trial", help="a project's trial id or best: the search's checkpoint of it")
    p.add_argument("--format", choices=list(FORMATS), default="keras",
                   help="keras (default), saved_model (a folder), onnx (needs the export "
                   "extra) or litert (.tflite)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="where to write (default MODEL.keras, MODEL.onnx, MODEL.tflite or the "
                   "folder MODEL_saved_model here; -: the file to standard output)")
    p.add_argument("--check-images", type=options.non_negative_int, default=1000, metavar="N",
                   help="test images to run the exported file on and compare with the Keras "
                   "model (default 1000; 0: no check)")
    return p


def cmd_export(args: argparse.Namespace) -> int:
    from fmnist_search import export, results
    from fmnist_search.errors import UserError

    export.require(args.format)  # before TensorFlow loads
    if is_stdout(args.out) and args.format == "saved_model":
        raise UserError("--out -: a SavedModel is a folder, which cannot go to standard "
                        "output; give --out a folder name.")
    root = results.results_root(args.results_dir)
    temp = tempfile.mkdtemp(prefix="fmnist-export-") if is_stdout(args.out) else None
    try:
        out = (Path(temp) / export.default_path("model", args.format)) if temp else args.out
        done = export.export_model(root, args.model, args.format, out, args.trial,
                                   args.check_images)
        say = err_console if temp else console
        check = done.check
        if check is None:
            verdict = done.checked_on
        else:
            verdict = (f"checked on {check.images:,} {done.checked_on}: the same class for "
                       f"{check.same_class:,}, largest probability difference "
                       f"{check.max_abs_difference:.1e}")
        where = "standard output" if temp else done.path
        say.print(f"Wrote {done.name} as {args.format} to {where} ({verdict})", highlight=False)
        if check is not None and not check.agrees:
            err_console.print(f"warning: the exported file gives another class than the Keras "
                              f"model for {check.images - check.same_class:,} of "
                              f"{check.images:,} images", highlight=False)
        if temp:
            sys.stdout.flush()
            sys.stdout.buffer.write(done.path.read_bytes())
        return 0 if check is None or check.agrees else 1
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
