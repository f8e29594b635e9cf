"""Epoch time: fmnist-search's training path vs a plain Keras script of the same model.

Same data (the real 48k/12k split), same batch size, same seed, in one process, the epochs of
all contestants taken in turn (see ``bench_model``). Reports the tool/plain ratio in fp32 and
in the tool's ``auto`` precision, the speed-up of the tool's ``auto`` over plain fp32,
validation accuracy after the same epochs, and for model1 (under TensorFlow) the plain script
fed by a cached, prefetched tf.data pipeline instead of in-memory arrays. The models: the
report's model1, model3 and model6, and ``resnet``, the resnet space's default point (the
ResNet-20-like network); each plain script must have the tool's parameter count. Usage:
python benchmarks/bench_epoch.py [--models model1,model3,model6,resnet]
[--rounds model1=6,model3=4,model6=3] (``benchmarks/gpu_tool_vs_plain.sh`` runs it on a GPU)
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from dataclasses import dataclass, field

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
    if name == "resnet":
        return plain_resnet20(num_classes)
    raise ValueError(name)


def plain_resnet20(num_classes: int):
    """The resnet space's default point (ResNet-20-like, 273,386 parameters) as a plain Keras
    script would write it: a 16-filter stem, three pre-activation stages of 3 blocks (16, 32,
    64 filters; a 1x1 projection where the shape changes), batch norm and relu, global average
    pooling, L2 1e-4 on every kernel, batch-norm momentum 0.9 (the point's values)."""
    import keras
    from keras import layers, regularizers

    reg = regularizers.L2(1e-4)

    def bn_relu(x):
        return layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(x))

    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, padding="same", activation="relu", kernel_regularizer=reg)(inputs)
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage and not block else 1
            pre = bn_relu(x)
            shortcut = x
            if stride != 1 or x.shape[-1] != width:
                shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False,
                                         kernel_regularizer=reg)(pre)
            h = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                              kernel_regularizer=reg)(pre)
            h = layers.Conv2D(width, 3, padding="same", use_bias=False,
                              kernel_regularizer=reg)(bn_relu(h))
            x = layers.Add()([shortcut, h])
    x = layers.GlobalAveragePooling2D()(bn_relu(x))
    out = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg,
                       dtype="float32")(x)
    return keras.Model(inputs, out)


def tool_values(name: str) -> dict:
    """A report baseline's pinned values, or for ``resnet`` the resnet space's default point."""
    from fmnist_search import baselines, builder, space

    if name == "resnet":
        return builder.resolve(space.load_named("resnet").default_values())
    return builder.resolve(baselines.load(name).values)


class Timer:
    def __init__(self):
        import keras

        class _T(keras.callbacks.Callback):
            def on_epoch_begin(s, epoch, logs=None):
                s.t0 = time.perf_counter()

            def on_epoch_end(s, epoch, logs=None):
                self.times.append(time.perf_counter() - s.t0)
                self.val_accuracy = float(logs["val_accuracy"])

        self.times: list[float] = []
        self.val_accuracy = float("nan")
        self.callback = _T()


@dataclass
class Contestant:
    """One way of training the model; trained one epoch at a time, in turn with the others."""

    who: str  # plain, plain-tfdata or tool
    policy: str
    model: object = None
    values: dict = field(default_factory=dict)
    timer: Timer = field(default_factory=Timer)
    feed: tuple = ()

    @property
    def key(self) -> str:
        return f"{self.who}/{self.policy}"


def build(c: Contestant, name: str, ds, seed: int) -> None:
    """The policy is read when layers are created, so each model keeps its own."""
    import keras

    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(c.policy)
    if c.who == "tool":
        from fmnist_search import builder

        c.values = tool_values(name)
        c.model = builder.build_model(c.values, ds.num_classes)
        assert c.model.dtype_policy.name == c.policy, (c.model.dtype_policy.name, c.policy)
        return
    c.model = plain_model(name, ds.num_classes)
    c.model.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if c.who == "plain-tfdata":
        import tensorflow as tf

        train = (tf.data.Dataset.from_tensor_slices((ds.x_train, ds.y_train)).cache()
                 .shuffle(len(ds.y_train), seed=seed).batch(128).prefetch(tf.data.AUTOTUNE))
        val = tf.data.Dataset.from_tensor_slices((ds.x_val, ds.y_val)).batch(128).cache()
        c.feed = (train, val)


def one_epoch(c: Contestant, ds, epoch: int) -> None:
    """Epoch ``epoch`` (0-based) of this contestant, with the report's per-epoch decay."""
    import keras

    if c.who == "tool":
        from rich.console import Console

        from fmnist_search import training
        from fmnist_search.callbacks import EpochLog, EpochProgress
        from fmnist_search.progress import make_progress

        log = EpochLog()
        with make_progress(Console(file=io.StringIO())) as progress:
            shown = EpochProgress(progress, log, epoch + 1)
            training.fit(c.model, c.values, (ds.x_train, ds.y_train), (ds.x_val, ds.y_val),
                         epoch + 1, initial_epoch=epoch, log=log,
                         extra_callbacks=[c.timer.callback, shown])
        return
    schedule = keras.callbacks.LearningRateScheduler(lambda e: 1e-3 * 0.9**e)
    common_kwargs = dict(epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                         callbacks=[schedule, c.timer.callback])
    if c.who == "plain-tfdata":
        c.model.fit(c.feed[0], validation_data=c.feed[1], **common_kwargs)
    else:
        c.model.fit(ds.x_train, ds.y_train, batch_size=128,
                    validation_data=(ds.x_val, ds.y_val), **common_kwargs)


def bench_model(name: str, ds, rounds: int, best: str, seed: int = 0) -> dict:
    """All contestants built, then trained epoch by epoch in rotating order.

    This machine's speed drifts by up to 2x over minutes, so whole runs one after the other
    compare different machine states; epochs taken in turn, in a rotating order, compare
    like with like, and the ratios are taken round by round (round 1 pays for tracing and is
    left out).
    """
    import keras

    keras.backend.clear_session()
    contestants = [Contestant("plain", "float32"), Contestant("tool", "float32"),
                   Contestant("plain", best), Contestant("tool", best)]
    if name == "model1" and keras.backend.backend() == "tensorflow":
        contestants.append(Contestant("plain-tfdata", "float32"))
    for c in contestants:
        build(c, name, ds, seed)
    params = {c.key: c.model.count_params() for c in contestants}
    assert len(set(params.values())) == 1, f"{name}: not the same network: {params}"
    for epoch in range(rounds):
        shift = epoch % len(contestants)
        for c in contestants[shift:] + contestants[:shift]:
            one_epoch(c, ds, epoch)
        print(f"{name} round {epoch + 1}/{rounds}: "
              + ", ".join(f"{c.key} {c.timer.times[-1]:.1f} s" for c in contestants), flush=True)
    by = {c.key: c for c in contestants}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(by[a].timer.times[1:],
                                                      by[b].timer.times[1:], strict=True))

    return {
        "seconds_per_epoch": {c.key: statistics.median(c.timer.times[1:]) for c in contestants},
        "val_accuracy": {c.key: c.timer.val_accuracy for c in contestants},
        "ratio_tool_over_plain_fp32": ratio("tool/float32", "plain/float32"),
        "ratio_tool_over_plain_best": ratio(f"tool/{best}", f"plain/{best}"),
        "speedup_tool_auto_over_plain_fp32": 1 / ratio(f"tool/{best}", "plain/float32"),
        "val_accuracy_points_auto_minus_fp32": 100 * (by[f"tool/{best}"].timer.val_accuracy
                                                      - by["plain/float32"].timer.val_accuracy),
        "epoch_times": {c.key: c.timer.times for c in contestants},
        "params": params[contestants[0].key],
    }


def parse_rounds(text: str, models: list[str]) -> dict[str, int]:
    """``4`` for every model, or ``model1=5,model6=3`` (others: 4)."""
    if "=" not in text:
        return {m: int(text) for m in models}
    given = dict(part.split("=") for part in text.split(","))
    return {m: int(given.get(m, 4)) for m in models}


def main() -> None:
    from fmnist_search import dataset, training

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="model1,model3,model6",
                        help="of: model1, model3, model6 (report baselines), resnet (the "
                             "resnet space's default point)")
    parser.add_argument("--rounds", default="model1=6,model3=4,model6=3",
                        help="epochs per contestant (the first is warm-up): N or model=N,...")
    parser.add_argument("--subset", type=float, default=1.0, help="for a smoke test only")
    parser.add_argument("--name", default="epoch_time",
                        help="results file name (a rerun of one model can keep the full run's)")
    args = parser.parse_args()
    models = args.models.split(",")
    rounds = parse_rounds(args.rounds, models)
    ds = dataset.prepare(dataset.DataSettings(subset=args.subset))
    best = training.choose_policy("auto")
    out = {"settings": {**vars(args), "rounds": rounds, "batch_size": 128,
                        "n_train": len(ds.y_train), "tool_best_policy": best,
                        "design": "all contestants built, then one epoch each in rotating "
                                  "order per round; medians over rounds 2..N; ratios are "
                                  "medians of per-round ratios"},
           "models": {}}
    for name in models:
        result = bench_model(name, ds, rounds[name], best)
        out["models"][name] = result
        print(name, {k: round(v, 3) for k, v in result.items() if isinstance(v, float)},
              flush=True)
        common.write(args.name, out)  # after each model, so a stopped run keeps its results


if __name__ == "__main__":
    main()
