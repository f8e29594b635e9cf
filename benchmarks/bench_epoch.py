"""Epoch time: fmnist-search's training path vs a plain Keras script of the same model.

Same data (the real 48k/12k split), same batch size, same seed, run alternately in one process,
several repetitions. Reports the tool/plain ratio in fp32 and in the tool's ``auto`` precision,
the speed-up of the tool's ``auto`` over plain fp32, and validation accuracy after the same
epochs. Usage: python benchmarks/bench_epoch.py [--models model1,model3,model6] [--reps 2]
[--epochs 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import common  # noqa: F401  (puts the repository on sys.path)


def plain_model(name: str, num_classes: int):
    """The report's models written as plain Keras, the way the report's notebook did."""
    import keras
    from keras import layers, regularizers

    if name == "model1":
        return keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax", dtype="float32")])
    if name == "model3":
        return keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(128, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Dropout(0.25), layers.Flatten(), layers.Dense(128, activation="relu"),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax", dtype="float32")])
    if name == "model6":
        reg = regularizers.L2(0.01)
        inputs = keras.Input((28, 28, 1))
        x = layers.Conv2D(64, 3, padding="same", kernel_regularizer=reg)(inputs)
        x = layers.Activation("relu")(x)
        h = layers.Activation("relu")(x)
        h = layers.Conv2D(64, 3, padding="same", kernel_regularizer=reg)(h)
        x = layers.Activation("relu")(layers.Add()([x, h]))
        x = layers.Dropout(0.2)(layers.Flatten()(layers.MaxPooling2D(2)(x)))
        out = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg,
                           dtype="float32")(x)
        return keras.Model(inputs, out)
    raise ValueError(name)


class Timer:
    def __init__(self):
        import keras

        class _T(keras.callbacks.Callback):
            def on_epoch_begin(s, epoch, logs=None):
                s.t0 = time.perf_counter()

            def on_epoch_end(s, epoch, logs=None):
                self.times.append(time.perf_counter() - s.t0)

        self.times: list[float] = []
        self.callback = _T()


def fresh(seed: int, policy: str) -> None:
    """clear_session() resets Keras' global dtype policy, so the policy is set after it."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(policy)


def run_plain(name, ds, epochs, seed, policy="float32"):
    import keras

    fresh(seed, policy)
    model = plain_model(name, ds.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    timer = Timer()
    hist = model.fit(ds.x_train, ds.y_train, batch_size=128, epochs=epochs, verbose=0,
                     validation_data=(ds.x_val, ds.y_val),
                     callbacks=[keras.callbacks.LearningRateScheduler(lambda e: 1e-3 * 0.9**e),
                                timer.callback])
    return timer.times, hist.history["val_accuracy"][-1]


def run_plain_tfdata(name, ds, epochs, seed, policy="float32"):
    """The same plain script fed by a cached, shuffled, prefetched tf.data pipeline."""
    import keras
    import tensorflow as tf

    fresh(seed, policy)
    model = plain_model(name, ds.num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    train = (tf.data.Dataset.from_tensor_slices((ds.x_train, ds.y_train)).cache()
             .shuffle(len(ds.y_train), seed=seed).batch(128).prefetch(tf.data.AUTOTUNE))
    val = tf.data.Dataset.from_tensor_slices((ds.x_val, ds.y_val)).batch(128).cache()
    timer = Timer()
    hist = model.fit(train, epochs=epochs, verbose=0, validation_data=val,
                     callbacks=[keras.callbacks.LearningRateScheduler(lambda e: 1e-3 * 0.9**e),
                                timer.callback])
    return timer.times, hist.history["val_accuracy"][-1]


def run_tool(name, ds, epochs, seed, policy="float32"):
    """The tool's own path: builder, protocol callbacks and the rich progress display."""
    from rich.console import Console

    from fmnist_search import baselines, builder, training
    from fmnist_search.progress import make_progress

    fresh(seed, policy)
    values = builder.resolve(baselines.load(name).values)
    model = builder.build_model(values, ds.num_classes)
    assert model.dtype_policy.name == policy, (model.dtype_policy.name, policy)
    timer = Timer()
    with make_progress(Console(file=io.StringIO())) as progress:
        result = training.fit(model, values, (ds.x_train, ds.y_train), (ds.x_val, ds.y_val),
                              epochs, extra_callbacks=[timer.callback], progress=progress)
    return timer.times, result.history[-1]["val_accuracy"]


def main() -> None:

    from fmnist_search import data, training

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="model1,model3,model6")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    ds = data.prepare(data.DataSettings())
    best = training.choose_policy("auto")
    out = {"settings": {**vars(args), "batch_size": 128, "n_train": len(ds.y_train),
                        "tool_best_policy": best,
                        "epoch_time": "median of epochs after the first, over repetitions"},
           "models": {}}
    for name in args.models.split(","):
        runs: dict[str, dict[str, list]] = {}
        for rep in range(args.reps):
            for policy in ("float32", best):
                for who, fn in (("plain", run_plain), ("tool", run_tool)):
                    times, acc = fn(name, ds, args.epochs, seed=rep, policy=policy)
                    key = f"{who}/{policy}"
                    slot = runs.setdefault(key, {"epoch_times": [], "val_accuracy": []})
                    slot["epoch_times"] += times[1:]
                    slot["val_accuracy"].append(acc)
                    print(f"{name} rep {rep} {key}: {statistics.median(times[1:]):.2f} s/epoch, "
                          f"val_acc {acc:.4f}", flush=True)
        med = {k: statistics.median(v["epoch_times"]) for k, v in runs.items()}
        acc = {k: statistics.mean(v["val_accuracy"]) for k, v in runs.items()}
        out["models"][name] = {
            "seconds_per_epoch": med,
            "mean_val_accuracy": acc,
            "ratio_tool_over_plain_fp32": med["tool/float32"] / med["plain/float32"],
            "ratio_tool_over_plain_best": med[f"tool/{best}"] / med[f"plain/{best}"],
            "speedup_tool_auto_over_plain_fp32": med["plain/float32"] / med[f"tool/{best}"],
            "val_accuracy_points_auto_minus_fp32": 100 * (acc[f"tool/{best}"]
                                                          - acc["plain/float32"]),
            "raw": runs,
        }
        print(name, {k: round(v, 3) for k, v in out["models"][name].items()
                     if isinstance(v, float)}, flush=True)
        common.write("epoch_time", out)  # after each model, so a stopped run keeps its results
    feeds = {}
    for rep in range(args.reps):
        for label, fn in (("arrays", run_plain), ("tf.data", run_plain_tfdata)):
            times, _ = fn("model1", ds, args.epochs, seed=rep)
            feeds.setdefault(label, []).extend(times[1:])
    out["input_path_model1_fp32"] = {k: statistics.median(v) for k, v in feeds.items()}
    print("input path", out["input_path_model1_fp32"], flush=True)
    common.write("epoch_time", out)


if __name__ == "__main__":
    main()
