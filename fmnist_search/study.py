"""A searched project as one object for a notebook, after Optuna's ``Study``: the best trial,
its values and score, the trials, the leaderboard, the accuracy/parameters front and the final
table, each read from the project's records when asked (so a running search is seen as it
goes; nothing is written, no lock is taken).

    study = api.open("cnn-hyperband")
    study.best_params, study.best_value     # the best trial's values and validation accuracy
    study.trials_dataframe()                # every trial, failed ones included
    study.front()                           # the trials no smaller trial beats on accuracy
    study.best_model().predict(x)           # the best trial's Keras model
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmnist_search import results
from fmnist_search.errors import UserError


class Study:
    """One project of a results directory (``api.open``). ``api`` is the notebook API that
    made it (``fmnist_search.api``): its models and tables come from the same functions, and
    passing it keeps this module from importing the layer above it (a cycle)."""

    def __init__(self, root: Path, project: str, api: Any) -> None:
        results.load_project(root, project)  # an unknown name is refused, naming the known ones
        self.root = root
        self.project = project
        self._api = api

    def __repr__(self) -> str:
        return f"Study({self.project!r}, results_dir={str(self.root)!r})"

    @property
    def best_trial(self) -> dict[str, Any]:
        """The finished trial of the highest validation accuracy (the leaderboard's first
        trial): ``trial``, ``val_accuracy``, ``val_loss``, ``params``, ``seconds_per_epoch``,
        ``epochs``, ``architecture``, ``values`` and its folder ``path``."""
        row = results.find_trial(self.root, self.project, "best")
        keys = ("trial", "status", "val_accuracy", "val_loss", "params", "seconds_per_epoch",
                "epochs", "architecture", "values", "path")
        return {k: row.get(k) for k in keys}

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's hyperparameter values, as ``builder.build_model`` takes them."""
        return dict(self.best_trial["values"])

    @property
    def best_value(self) -> float:
        """The best trial's validation accuracy (the search's objective)."""
        return float(self.best_trial["val_accuracy"])

    def best_model(self):
        """The best trial's Keras model with the weights it was scored with (``api.model``)."""
        return self._api.model(self.project, "best", self.root)

    def trials_dataframe(self):
        """Every trial of the project, failed and pruned ones included, best first, with the
        columns of ``leaderboard --csv`` (one per hyperparameter that varies)."""
        return self._api.trials(self.project, self.root, baselines=False, include_failed=True)

    def leaderboard(self):
        """What ``fmnist-search leaderboard PROJECT`` lists: the finished trials with the
        baseline runs on the same data beside them."""
        return self._api.trials(self.project, self.root)

    def front(self):
        """The Pareto front of the finished trials: validation accuracy against parameters
        (the front ``compare`` draws), fewest parameters first; the leaderboard's columns."""
        frame = self.leaderboard()
        trials = frame[frame["kind"] == "trial"]
        if trials.empty:
            return trials
        rows = [r for r in results.collect(self.root, [self.project], baselines=False)
                if r["kind"] == "trial"]
        table = results.compare_table(rows)
        on_front = set(table.loc[table["pareto_params"], "trial"].astype(str))
        front = trials[trials["trial"].astype(str).isin(on_front)]
        return front.sort_values("params", kind="stable").reset_index(drop=True)

    def final(self):
        """The final table of ``finalize`` (``final.json``'s rows) as a DataFrame, best test
        accuracy first, with a ``delivered`` column marking the model it delivers (its name
        also in ``.attrs["delivered"]``)."""
        import pandas as pd

        from fmnist_search import store

        record = store.read_final(self.root, self.project)
        if not record or not record.get("rows"):
            raise UserError(f"Project '{self.project}' has not been finalized: run "
                            f"`fmnist-search finalize {self.project}` (or api.finalize).")
        frame = pd.DataFrame(record["rows"])
        names = (frame["name"] if "name" in frame else frame["trial"]).astype(str)
        delivered = (record.get("delivered") or {}).get("name")
        frame.insert(0, "delivered", names == str(delivered))
        if "test_accuracy" in frame:
            frame = frame.sort_values("test_accuracy", ascending=False, na_position="last",
                                      kind="stable").reset_index(drop=True)
        frame.attrs["delivered"] = delivered
        return frame
