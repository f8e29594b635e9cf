"""The two halves of a search over several machines: ``chief`` (serves the oracle; it is
``run`` without local workers) and ``worker`` (trains what a chief hands out). ``run --workers
N`` is both on one machine."""

from __future__ import annotations

import argparse
import re
import socket

from fmnist_search.cli import options
from fmnist_search.cli.common import SharedOptions, console, prepare_data
from fmnist_search.cli.search_commands import add_run, cmd_run
from fmnist_search.tuning.network import CHIEF_TIMEOUT, LOOPBACK


def add_chief(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = add_run(sub, shared, "chief", "serve a search's oracle to workers on other machines "
                "(the options of `run`)")
    g = p.add_argument_group("chief")
    g.add_argument("--bind", type=options.bind_host, default=LOOPBACK,
                   help=f"address to listen on (default {LOOPBACK}: this machine only). Any "
                   "other is unauthenticated and unencrypted: a private network or SSH tunnel")
    g.add_argument("--port", type=options.port, default=0,
                   help="port to listen on (default 0: a free one, printed)")
    return p


def cmd_chief(args: argparse.Namespace) -> int:
    return cmd_run(args, chief=True)


def add_worker(sub, shared: SharedOptions) -> argparse.ArgumentParser:
    p = sub.add_parser("worker", parents=[shared.common],
                       help="train the trials a chief hands out (see `chief`)")
    p.add_argument("--chief", required=True, type=options.address,
                   help="the chief's HOST:PORT, as `chief` printed it")
    p.add_argument("--project", required=True, help="the chief's project")
    p.add_argument("--worker-id", type=options.worker_id, default=None,
                   help="this worker's id, unique in the search and the same when it is "
                   "restarted, so it resumes its trial (default worker-HOSTNAME)")
    options.add_data_dir(p)
    p.add_argument("--threads", type=options.threads,
                   help="TensorFlow threads (default: all cores this process may use)")
    p.add_argument("--cpus", type=options.cpu_list, help="pin to these cores, e.g. 0,1")
    p.add_argument("--chief-timeout", type=options.wait_seconds, default=CHIEF_TIMEOUT,
                   help="seconds to wait for the chief to answer before giving up (default "
                   f"{CHIEF_TIMEOUT:g})")
    return p


def default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-.") or "host"
    return f"worker-{host}"[:64].replace("chief", "ch1ef")


def cmd_worker(args: argparse.Namespace) -> int:
    from fmnist_search import preflight, results, store
    from fmnist_search.tuning import worker  # light: TensorFlow loads in run_worker

    root = results.results_root(args.results_dir)
    store.check_inside(root, args.project)
    worker.watch_parent(worker.supervisor_pid())  # an orphan stops, even while TensorFlow loads
    req = worker.WorkerRequest(
        root=root, project=args.project,
        chief=args.chief,
        worker_id=args.worker_id or default_worker_id(), data_dir=args.data_dir,
        threads=args.threads, cpus=args.cpus, debug=args.debug,
        chief_timeout=args.chief_timeout)
    preflight.wait_for_chief(req.chief.host, req.chief.port, req.chief_json, req.chief_timeout,
                             lambda text: console.print(text, highlight=False))
    from fmnist_search import tuning

    try:
        worker.run_worker(req, console, prepare_data)
    except tuning.Stopped as exc:
        console.print(f"{req.worker_id}: stopped by {exc.args[0]}; its trial runs again when "
                      "it (or another worker) asks the chief for one")
        worker.exit_if_orphaned(exc.exit_status)
        return exc.exit_status
    return 0
