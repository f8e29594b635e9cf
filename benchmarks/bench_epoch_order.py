"""What reshuffling every epoch costs: ``training.EpochOrder`` (a ``keras.utils.PyDataset`` that
hands Keras epoch ``e``'s batches in ``default_rng([seed, e])``'s order) against Keras' own array
adapter (which, seeded, repeats one order every epoch: see ``EpochOrder``), on the `resnet`
space's default point (ResNet-20-like) and model3.

Each contestant trains its own copy of the model one epoch at a time, in turn, the order
rotating each round (this machine's speed drifts over minutes, ``bench_epoch.bench_model``);
round 1 pays for tracing and is left out. Written to ``benchmarks/results/epoch_order.json``.

    .venv/bin/python benchmarks/bench_epoch_order.py [--subset 0.1] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=4, help="epochs each (the first: warm-up)")
    args = parser.parse_args()

    import keras

    from fmnist_search import baselines, builder, dataset, space, training

    ds = dataset.prepare(dataset.DataSettings(subset=args.subset))
    models = {"resnet-default": builder.resolve(space.load_named("resnet").default_values()),
              "model3": builder.resolve(baselines.load("model3").values)}
    out = {}
    policy = training.choose_policy("auto")
    for name, values in models.items():
        nets = {}
        for who in ("keras-arrays", "epoch-order"):
            keras.utils.set_random_seed(0)
            nets[who] = builder.build_model(values, ds.num_classes, policy=policy)
        times: dict[str, list[float]] = {who: [] for who in nets}
        batch = int(values["batch_size"])
        for epoch in range(args.rounds):
            order = list(nets) if epoch % 2 == 0 else list(nets)[::-1]
            for who in order:
                start = time.perf_counter()
                if who == "keras-arrays":
                    nets[who].fit(ds.x_train, ds.y_train, batch_size=batch, epochs=epoch + 1,
                                  initial_epoch=epoch, verbose=0)
                else:
                    data = training.EpochOrder.dataset(ds.x_train, ds.y_train, batch, 0, epoch)
                    nets[who].fit(data, epochs=epoch + 1, initial_epoch=epoch, shuffle=False,
                                  verbose=0)
                times[who].append(time.perf_counter() - start)
        medians = {who: statistics.median(t[1:]) for who, t in times.items()}
        out[name] = {"seconds": times, "median_seconds": medians,
                     "ratio": medians["epoch-order"] / medians["keras-arrays"]}
        print(f"{name}: arrays {medians['keras-arrays']:.2f} s, epoch order "
              f"{medians['epoch-order']:.2f} s an epoch of {len(ds.y_train):,} images "
              f"(ratio {out[name]['ratio']:.3f})", flush=True)
    common.write("epoch_order", {"subset": args.subset, "rounds": args.rounds,
                                 "train_images": len(ds.y_train), "policy": policy,
                                 "models": out})


if __name__ == "__main__":
    main()
