"""Augmentation cost: seconds per epoch with the augmentation layers off and on.

Each model is built once per setting (off; shift 2 + flip; shift 2 + flip + erase 0.5) and
trained through ``training.fit`` one epoch at a time, the settings taken in turn in a rotating
order (as ``bench_epoch.py`` does: this machine's speed drifts over minutes), in the tool's
``auto`` precision, on a subset of the real training split. Medians over rounds 2..N; the
cost is the median of the per-round ratios on/off. The layers alone are also timed per batch
(``layer_cost``), a figure this machine's drift does not swamp. Usage:
python benchmarks/bench_augment.py [--models model3,resnet20] [--rounds 4] [--subset 0.25]
"""

from __future__ import annotations

import argparse
import statistics

import common  # noqa: F401  (puts the repository on sys.path)

# A ResNet-20-like point of the builder: a 16-filter stem, 3 pre-activation stages of 3 blocks.
RESNET20 = {"stages": 1, "filters_1": 16, "kernel_1": 3, "convs_1": 1, "pool_1": False,
            "dropout_1": 0.0, "res_stages": 3, "res_width": 16, "res_depth": 3, "head": "gap",
            "dense_layers": 0}
SETTINGS = {
    "off": {},
    "t2+f": {"aug_translate": 2, "aug_flip": True},
    "t2+f+e.5": {"aug_translate": 2, "aug_flip": True, "aug_erase": 0.5},
}


def model_values(name: str) -> dict:
    from fmnist_search import baselines

    return dict(RESNET20) if name == "resnet20" else dict(baselines.load(name).values)


def bench_model(name: str, ds, rounds: int, policy: str, seed: int = 0) -> dict:
    import keras

    from fmnist_search import builder, training

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    models, values, times, accuracy = {}, {}, {}, {}
    for key, extra in SETTINGS.items():
        keras.utils.set_random_seed(seed)
        values[key] = builder.resolve({**model_values(name), **extra})
        models[key] = builder.build_model(values[key], ds.num_classes)
        times[key] = []
    keys = list(SETTINGS)
    for epoch in range(rounds):
        shift = epoch % len(keys)
        for key in keys[shift:] + keys[:shift]:
            result = training.fit(models[key], values[key], (ds.x_train, ds.y_train),
                                  (ds.x_val, ds.y_val), epoch + 1, initial_epoch=epoch)
            times[key].append(result.history[-1]["seconds"])
            accuracy[key] = result.history[-1]["val_accuracy"]
        print(f"{name} round {epoch + 1}/{rounds}: "
              + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in keys), flush=True)

    def ratio(key: str) -> float:
        return statistics.median(a / b for a, b in zip(times[key][1:], times["off"][1:],
                                                       strict=True))

    return {
        "architecture": {k: builder.short_name(values[k], ds.num_classes) for k in keys},
        "params": sum(training.count_params(models["off"])),
        "seconds_per_epoch": {k: statistics.median(times[k][1:]) for k in keys},
        "ratio_over_off": {k: ratio(k) for k in keys if k != "off"},
        "val_accuracy_after_rounds": accuracy,
        "epoch_times": times,
    }


def layer_cost(policy: str, batch: int = 128, reps: int = 300) -> dict:
    """Milliseconds per batch of the augmentation layers alone, in a traced function, against
    the same function without them (what a training step pays on top); settings in turn."""
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from fmnist_search import augment, builder

    keras.mixed_precision.set_global_policy(policy)
    x = tf.constant(np.random.default_rng(0).random((batch, 28, 28, 1), "float32"))
    functions = {}
    for key, extra in SETTINGS.items():
        v = builder.resolve(extra)
        layers = augment.layers_for(v["aug_translate"], v["aug_flip"], v["aug_erase"],
                                    v["aug_erase_size"])

        def apply(images, layers=layers):
            images = tf.cast(images, keras.mixed_precision.global_policy().compute_dtype)
            for layer in layers:
                images = layer(images, training=True)
            return images

        functions[key] = tf.function(apply)
        functions[key](x)
    times: dict[str, list[float]] = {key: [] for key in functions}
    for _ in range(5):
        for key, fn in functions.items():
            start = time.perf_counter()
            for _ in range(reps):
                fn(x)
            times[key].append((time.perf_counter() - start) / reps * 1000)
    base = statistics.median(times["off"])
    return {key: statistics.median(t) - base for key, t in times.items() if key != "off"}


def main() -> None:
    from fmnist_search import dataset, training

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="model3,resnet20")
    parser.add_argument("--rounds", type=int, default=4, help="epochs per setting (the first "
                        "is warm-up)")
    parser.add_argument("--subset", type=float, default=0.25,
                        help="fraction of the training split (0.25: 12,000 images)")
    parser.add_argument("--name", default="augment")
    args = parser.parse_args()
    ds = dataset.prepare(dataset.DataSettings(subset=args.subset))
    policy = training.choose_policy("auto")
    out = {"settings": {**vars(args), "batch_size": 128, "n_train": len(ds.y_train),
                        "n_val": len(ds.y_val), "policy": policy,
                        "augmentation": SETTINGS,
                        "design": "every setting built, then one epoch each in rotating order "
                                  "per round; medians over rounds 2..N; ratios are medians of "
                                  "per-round ratios to 'off'"},
           "models": {}}
    out["layers_ms_per_batch_of_128"] = layer_cost(policy)
    print("augmentation layers alone, ms per batch of 128:", out["layers_ms_per_batch_of_128"],
          flush=True)
    for name in args.models.split(","):
        result = bench_model(name, ds, args.rounds, policy)
        out["models"][name] = result
        print(name, result["seconds_per_epoch"], result["ratio_over_off"], flush=True)
        common.write(args.name, out)


if __name__ == "__main__":
    main()
