"""Print the benchmark results in benchmarks/results/ as the Markdown tables of the README."""

from __future__ import annotations

import json

from common import RESULTS


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def fidelity(result: dict) -> None:
    """bench_fidelity.py: each configuration's scores, then the rank correlations."""
    keys = ["hyperband_now@1", "hyperband_now@3", "complete@1", "complete@3", "final"]
    rows = [r for r in result["rows"] if "scores" in r]
    rejected = [r for r in result["rows"] if "rejected" in r]
    print(f"Screening fidelity ({result['machine']['cpu']}, {result['machine']['when']}; "
          f"{result['screening_subset']:.0%} of the training split; final protocol "
          f"{result['final_epochs']} epochs; {len(rows)} configurations scored, {len(rejected)} "
          f"rejected by the cost limit of {result['max_seconds_per_epoch']:.0f} s per epoch):\n")
    print("| configuration | params | " + " | ".join(keys) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in keys) + " |")
    for r in rows:
        print(f"| {r['name']} | {r['params']:,} | "
              + " | ".join(f"{r['scores'][k]:.4f}" for k in keys) + " |")
    corr = result["spearman_with_final"]
    print("| Spearman with final | | " + " | ".join(
        "" if k == "final" else (f"{corr[k]:+.2f}" if corr.get(k) is not None else "-")
        for k in keys) + " |")
    sd = result["seed_sd"]
    print(f"\nSeed-to-seed sd of a 1-epoch score: today's screening {sd['hyperband_now@1']:.4f}, "
          f"a complete 1-epoch schedule {sd['complete@1']:.4f}.\n")


def proof_runs() -> None:
    """bench_best.py's proof runs (``proof_seed*.json``): one row per model of each run's final
    table, the control's verdict under it, the worse run's winner being the claim."""
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("proof_seed*.json"))]
    if not runs:
        return
    print("| seed | stage | model | test acc | val acc | params | s/epoch | wall | reused |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in runs:
        for r in run["final_table"]:
            print(f"| {run.get('seed')} | {r['stage']} | {r['name']} | {r['test_accuracy']:.4f} | "
                  f"{r['val_accuracy']:.4f} | {r['params']:,} | {r['seconds_per_epoch']:.1f} | "
                  f"{(r['wall_seconds'] or 0) / 60:.0f} min | {'yes' if r['reused'] else ''} |")
    for run in runs:
        m, st = run["machine"], run["stages"]
        # Only what this run trained: finalize's own figure counted reused models' seconds
        # until 2026-11-28 (proof_seed1.json holds that figure).
        trained = sum(x["seconds"] or 0.0 for x in st["models"] if not x["reused"])
        print(f"\nSeed {run.get('seed')} ({m['cpu']}, {m['when'][:10]}): `{run['command']}`, "
              f"exit {run['exit_status']}, {run['wall_seconds'] / 60:.0f} min wall (screening "
              f"{(st['screening_seconds'] or 0) / 60:.0f} min, finalize "
              f"{trained / 60:.0f} min of training; trials {run['trials']}). "
              + ((run.get("control") or {}).get("line") or "No control row."))


def tuners(result: dict) -> None:
    """bench_tuners.py: one row a run, then the summary's target."""
    st, m = result["settings"], result["machine"]
    print(f"Tuners ({m['cpu']}, {m['when'][:10]}; space {st['space']}, preset "
          f"{st['search'].rsplit('/', 1)[-1]}):\n")
    print("| tuner | seed | trials | proposals | screening epochs | screening min | "
          "best screening | winner | params | winner test | control test | wall |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in sorted(result["runs"].values(), key=lambda r: (r["seed"], r["tuner"])):
        w = r.get("winner") or {}
        trials = ", ".join(f"{v} {k.lower()}" for k, v in sorted(r["trials"].items()))
        proposals = ", ".join(f"{v} {k}" for k, v in sorted(r["proposals"].items())) or "-"
        test = w.get("test_accuracy")
        control = r.get("control_test_accuracy")
        params = f"{w['params']:,}" if w.get("params") else "-"
        print(f"| {r['tuner']} | {r['seed']} | {trials} | {proposals} | "
              f"{r.get('screening_epochs', '-')} | {(r.get('screening_seconds') or 0) / 60:.0f} | "
              f"{r['best_screening']:.4f} | "
              f"{w.get('name', '-')} | {params} | "
              f"{'-' if test is None else f'{test:.4f}'} | "
              f"{'-' if control is None else f'{control:.4f}'} | "
              f"{r['wall_seconds'] / 60:.0f} min{' (resumed)' if r.get('resumed') else ''} |")
    if any(r.get("resumed") for r in result["runs"].values()):
        print("\n(resumed: the wall time of the run that finished the project; the screening "
              "minutes leave out the pause and count the earlier part)")
    summary = result.get("summary") or {}
    if "target_screening" in summary:
        print(f"\nTo reach {summary['target_screening']:.4f} (the lowest run's best):")
        for tuner, s in summary.items():
            if isinstance(s, dict):
                print(f"- {tuner}: {s.get('epochs_to_target')} screening epochs, "
                      f"{[round(t / 60, 1) for t in s['seconds_to_target']]} min")
    print()


def main() -> None:
    if (fid := load("fidelity")) is not None:
        fidelity(fid)
    if (tun := load("tuners")) is not None:
        tuners(tun)
    proof_runs()
    epoch = load("epoch_time")
    if epoch:
        m = epoch["machine"]
        best = epoch["settings"]["tool_best_policy"]
        rounds = ", ".join(f"{k} {v}" for k, v in epoch["settings"]["rounds"].items())
        print(f"Epoch time ({m['cpu']}, {m['cores']} cores, {epoch['settings']['n_train']:,} "
              f"training images, batch 128; epochs per contestant: {rounds}, the first left "
              "out):\n")
        print(f"| model | plain fp32 s/epoch | tool fp32 | ratio | plain {best} | tool {best} | "
              f"ratio | tool {best} vs plain fp32 | val acc plain fp32 / tool {best} |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        notes = []
        for name, r in epoch["models"].items():
            s, acc = r["seconds_per_epoch"], r["val_accuracy"]
            print(f"| {name} | {s['plain/float32']:.2f} | {s['tool/float32']:.2f} | "
                  f"{r['ratio_tool_over_plain_fp32']:.3f} | {s[f'plain/{best}']:.2f} | "
                  f"{s[f'tool/{best}']:.2f} | {r['ratio_tool_over_plain_best']:.3f} | "
                  f"{r['speedup_tool_auto_over_plain_fp32']:.2f}x faster | "
                  f"{acc['plain/float32']:.4f} / {acc[f'tool/{best}']:.4f} |")
            if "plain-tfdata/float32" in s:
                notes.append(f"Input path, {name} plain fp32: in-memory arrays "
                             f"{s['plain/float32']:.2f} s/epoch, cached prefetched tf.data "
                             f"{s['plain-tfdata/float32']:.2f} s/epoch.")
        print("\n" + "\n".join(notes) + "\n")
    over = load("trial_overhead")
    if over:
        print(f"Per-trial overhead ({over['settings']['trials']} trials of model1, "
              f"{over['settings']['epochs']} epochs on {over['settings']['n_train']:,} images): "
              f"at most {100 * over['max_overhead_fraction_per_trial']:.2f}% of a trial's wall "
              f"time; {100 * over['search_overhead_fraction']:.2f}% of the whole search "
              f"({over['search_wall_seconds']:.0f} s wall, {over['sum_fit_seconds']:.0f} s in "
              "fit).\n")
    mem = load("memory")
    if mem:
        rss = mem["peak_rss_mib"]
        first, last = sorted(rss, key=int)
        print(f"Memory: peak RSS {rss[first]:.0f} MiB after {first} trials, {rss[last]:.0f} MiB "
              f"after {last} (ratio {mem['ratio_last_over_first']:.3f}).\n")
    ttt = load("time_to_target")
    if ttt:
        print("| search | trials | wall | best val acc | best baseline (same data) | reached it |")
        print("| --- | ---: | ---: | ---: | --- | --- |")
        for project, r in ttt["searches"].items():
            hit = r["reached"]
            reached = (f"trial {hit['trial']} after {hit['seconds'] / 60:.1f} min"
                       if hit else "not reached")
            print(f"| {project} | {r['trials']} | {r['search_seconds'] / 60:.1f} min | "
                  f"{r['best_val_accuracy']:.4f} | {r['target_baseline']} "
                  f"{r['target_val_accuracy']:.4f} | {reached} |")

    aug = load("augment")
    if aug:
        st = aug["settings"]
        layers = aug.get("layers_ms_per_batch_of_128", {})
        print(f"\nAugmentation cost ({aug['machine']['cpu']}, {aug['machine']['cores']} cores, "
              f"{st['policy']}, {st['n_train']:,} training images, batch 128, {st['rounds']} "
              "epochs per setting, the first left out):\n")
        print("| model | off s/epoch | " + " | ".join(f"{k} s/epoch (ratio)" for k in
                                                   list(st["augmentation"])[1:]) + " |")
        print("| --- | ---: |" + " ---: |" * (len(st["augmentation"]) - 1))
        for name, r in aug["models"].items():
            s = r["seconds_per_epoch"]
            cells = [f"{s[k]:.2f} ({r['ratio_over_off'][k]:.3f})" for k in r["ratio_over_off"]]
            print(f"| {name} | {s['off']:.2f} | " + " | ".join(cells) + " |")
        if layers:
            print("\nThe layers alone, per batch of 128: "
                  + ", ".join(f"{k} {v:.2f} ms" for k, v in layers.items()) + ".")


if __name__ == "__main__":
    main()
