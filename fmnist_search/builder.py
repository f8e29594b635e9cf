"""Hyperparameter values -> a compiled Keras model: the one builder behind every model.

A set of values is first turned into a *plan*, a flat list of layer steps that is plain data.
The plan is what gets checked (can the image still be pooled?), rendered as the short
architecture string people read, and only then materialised as Keras layers. One source of
truth for all three means a name shown in a table is always the model that was trained.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fmnist_search.errors import ArchitectureError, UserError

INPUT_SHAPE = (28, 28, 1)
MAX_STAGES = 4
MAX_DENSE = 2
SCHEDULES = ("exponential", "cosine", "onecycle")


@dataclass(frozen=True)
class Domain:
    """What the builder can build for one hyperparameter (spaces may only narrow it)."""

    kind: str  # "int", "float", "choice" or "bool"
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    default: Any = None


# The builder's whole vocabulary. Per-stage names take a suffix: filters_1 .. filters_4.
DOMAINS: dict[str, Domain] = {
    "backbone": Domain("choice", choices=("none", "resnet50"), default="none"),
    "weights": Domain("choice", choices=("none", "imagenet"), default="none"),
    "stages": Domain("int", 1, MAX_STAGES, default=2),
    "filters": Domain("int", 1, 1024, default=32),
    "kernel": Domain("int", 1, 7, default=3),
    "convs": Domain("int", 1, 3, default=1),
    "pool": Domain("bool", default=True),
    "dropout": Domain("float", 0.0, 0.9, default=0.0),
    "batchnorm": Domain("choice", choices=("none", "conv", "pool"), default="none"),
    "dropout_place": Domain("choice", choices=("pool", "conv"), default="pool"),
    "bn_momentum": Domain("float", 0.0, 0.999, default=0.99),  # Keras' default, as the report
    "res_blocks": Domain("int", 0, 6, default=0),
    "res_convs": Domain("int", 1, 2, default=2),
    "res_shortcut": Domain("choice", choices=("identity", "projection"), default="identity"),
    "res_batchnorm": Domain("bool", default=False),
    # The modern residual family (0 stages: off): pre-activation stages that halve the size and
    # double the width, res_width filters in the first, res_depth two-convolution blocks each.
    "res_stages": Domain("int", 0, MAX_STAGES, default=0),
    "res_width": Domain("int", 1, 512, default=16),
    "res_depth": Domain("int", 1, 18, default=3),
    "final_pool": Domain("bool", default=False),
    "l2": Domain("float", 0.0, 1.0, default=0.0),
    "head": Domain("choice", choices=("flatten", "gap"), default="flatten"),
    "head_dropout": Domain("float", 0.0, 0.9, default=0.0),
    "dense_layers": Domain("int", 0, MAX_DENSE, default=1),
    "dense_units": Domain("int", 1, 4096, default=64),
    "dense_activation": Domain("choice", choices=("relu", "elu", "gelu", "swish", "tanh"),
                               default="relu"),
    # Augmentation, applied only while training (none by default, as in the report).
    "aug_translate": Domain("int", 0, 8, default=0),  # pixels of pad-and-crop shift
    "aug_flip": Domain("bool", default=False),  # horizontal
    "aug_erase": Domain("float", 0.0, 1.0, default=0.0),  # probability of a cutout per image
    "aug_erase_size": Domain("int", 1, INPUT_SHAPE[0], default=10),  # its side, in pixels
    "optimizer": Domain("choice", choices=("adam", "rmsprop", "sgd", "adamw"), default="adam"),
    "learning_rate": Domain("float", 1e-6, 1.0, default=1e-3),
    "beta_1": Domain("float", 0.0, 0.9999, default=0.9),
    "beta_2": Domain("float", 0.0, 0.99999, default=0.999),
    "weight_decay": Domain("float", 0.0, 1.0, default=0.0),  # decoupled: adamw and sgd
    "momentum": Domain("float", 0.0, 0.999, default=0.9),  # sgd
    "nesterov": Domain("bool", default=False),  # sgd
    "schedule": Domain("choice", choices=SCHEDULES, default="exponential"),
    "lr_decay": Domain("float", 0.01, 1.0, default=0.9),  # exponential: x lr_decay per epoch
    "warmup_epochs": Domain("int", 0, 1000, default=0),  # cosine: linear warm-up
    "label_smoothing": Domain("float", 0.0, 0.5, default=0.0),
    "tta": Domain("bool", default=False),  # evaluate on the mean of the image and its mirror
    # An exponential moving average of the weights with this momentum per step replaces them
    # when training ends (Keras' use_ema; validation during training sees the raw weights).
    # 0: off. A run resumed mid-training restarts the average from the restored weights.
    "ema": Domain("float", 0.0, 0.99999, default=0.0),
    # Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights at the end of
    # each of the last N epochs replaces them when training ends, and batch-norm statistics
    # are recomputed for it on the training images (callbacks.WeightAverage). 0: off.
    "swa_epochs": Domain("int", 0, 1000, default=0),
    "batch_size": Domain("int", 1, 8192, default=128),
    "epochs": Domain("int", 1, 1000, default=40),
}
INDEXED = {"filters": MAX_STAGES, "kernel": MAX_STAGES, "convs": MAX_STAGES, "pool": MAX_STAGES,
           "dropout": MAX_STAGES, "batchnorm": MAX_STAGES, "dense_units": MAX_DENSE}
PROTOCOL = ("optimizer", "learning_rate", "beta_1", "beta_2", "lr_decay", "batch_size", "epochs")
_INDEXED_NAME = re.compile(r"^(?P<base>[a-z_0-9]+?)_(?P<index>\d+)$")


def domain_of(name: str) -> Domain | None:
    """The domain of a (possibly per-stage) hyperparameter name, or None if unknown."""
    if name in DOMAINS:
        return DOMAINS[name]
    match = _INDEXED_NAME.match(name)
    if match and match["base"] in INDEXED and 1 <= int(match["index"]) <= INDEXED[match["base"]]:
        return DOMAINS[match["base"]]
    return None


def known_names() -> list[str]:
    names = [n for n in DOMAINS if n not in INDEXED]
    names += [f"{base}_{i}" for base, top in INDEXED.items() for i in range(1, top + 1)]
    return names


def resolve(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every name the builder reads, with the given values over the defaults."""
    unknown = [k for k in values if domain_of(k) is None and not k.startswith("tuner/")]
    if unknown:
        raise ArchitectureError(
            f"Unknown hyperparameter(s) {', '.join(sorted(unknown))}; the builder knows "
            f"{', '.join(known_names())}."
        )
    full = {name: domain_of(name).default for name in known_names()}
    full.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
    return full


def explicit(values: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved values that differ from their defaults: what identifies a configuration
    in a digest that must not change when a new hyperparameter (with a default that changes
    nothing) is added to the builder."""
    out = {}
    for name, value in resolve(values).items():
        domain = domain_of(name)
        if domain is None or value != domain.default:
            out[name] = value
    return out


def same_model(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two sets of values build and train the same model: equal once every name the
    builder reads is filled in (a value spelled out at its default is no different). Values
    the builder does not know make them different, never an error."""
    try:
        return resolve(a) == resolve(b)
    except ArchitectureError:
        return False


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Step:
    op: str  # augment, conv, bn, pool, drop, res, stage, relu, flatten, gap, dense, backbone, out
    args: tuple = ()
    group: str = ""  # the stage or section it belongs to, for the short name


def plan_layers(values: Mapping[str, Any], num_classes: int = 10) -> list[Step]:
    """The layer steps for a set of values; raises ArchitectureError if it cannot exist."""
    v = resolve(values)
    steps = _augment_steps(v)
    if v["backbone"] != "none":
        return [*steps, Step("backbone", (v["backbone"], v["weights"]), "b"),
                Step("out", (num_classes,))]
    for i in range(1, v["stages"] + 1):
        steps += _stage_steps(v, i)
    steps += _residual_steps(v)
    steps.append(Step("gap" if v["head"] == "gap" else "flatten", (), "head"))
    if v["head_dropout"] > 0:
        steps.append(Step("drop", (v["head_dropout"],), "head"))
    for i in range(1, v["dense_layers"] + 1):
        steps.append(Step("dense", (v[f"dense_units_{i}"], v["dense_activation"]), "dense"))
    steps.append(Step("out", (num_classes,), "out"))
    check_spatial(steps)
    return steps


def _stage_steps(v: Mapping[str, Any], i: int) -> list[Step]:
    filters, kernel, rate = v[f"filters_{i}"], v[f"kernel_{i}"], v[f"dropout_{i}"]
    bn, pool, at_conv = v[f"batchnorm_{i}"], v[f"pool_{i}"], v["dropout_place"] == "conv"
    group = f"s{i}"
    steps: list[Step] = []
    for _ in range(v[f"convs_{i}"]):
        steps.append(Step("conv", (filters, kernel), group))
        if bn == "conv":
            steps.append(Step("bn", (), group))
        if at_conv and rate > 0:
            steps.append(Step("drop", (rate,), group))
    if bn == "pool":
        steps.append(Step("bn", (), group))
    if pool:
        steps.append(Step("pool", (), group))
    if not at_conv and rate > 0:
        steps.append(Step("drop", (rate,), group))
    return steps


def _augment_steps(v: Mapping[str, Any]) -> list[Step]:
    args = (v["aug_translate"], bool(v["aug_flip"]), v["aug_erase"], v["aug_erase_size"])
    return [Step("augment", args, "aug")] if args[0] or args[1] or args[2] else []


def _residual_steps(v: Mapping[str, Any]) -> list[Step]:
    """The report's blocks at the last stage's width, then the modern stages, then a pool."""
    steps: list[Step] = []
    if v["res_blocks"]:
        width = v[f"filters_{v['stages']}"]
        args = (width, v["res_convs"], v["res_shortcut"], bool(v["res_batchnorm"]))
        steps += [Step("res", args, "res") for _ in range(v["res_blocks"])]
        steps.append(Step("relu", (), "res"))
    if v["res_stages"]:
        for k in range(v["res_stages"]):  # (width, blocks, stride)
            steps.append(Step("stage", (v["res_width"] * 2**k, v["res_depth"], 1 if k == 0 else 2),
                              "res"))
        steps += [Step("bn", (), "res"), Step("relu", (), "res")]  # pre-activation's last
    if v["final_pool"]:
        steps.append(Step("pool", (), "res"))
    return steps


def check_spatial(steps: list[Step]) -> None:
    size = INPUT_SHAPE[0]
    pools = 0
    for step in steps:
        if step.op == "pool":
            pools += 1
            if size < 2:
                raise ArchitectureError(
                    f"This architecture pools {pools} times, but a 28x28 image is down to "
                    f"{size}x{size} after {pools - 1} 2x2 pools: at most 4 pools fit. Reduce "
                    "'stages', or set some 'pool_<i>' or 'final_pool' to false."
                )
            size //= 2
        elif step.op == "stage" and step.args[2] == 2:
            size = (size + 1) // 2  # a stride-2 "same" convolution


def short_name(values: Mapping[str, Any], num_classes: int = 10) -> str:
    """A compact architecture string, e.g. ``C64-P-D.25 | C128-BN-P-D.25 | F | D128-D64 | ...``.

    Knobs at their defaults (the report's protocol, no augmentation) add nothing to it.
    """
    v = resolve(values)
    groups: list[tuple[str, list[str]]] = []
    for step in plan_layers(v, num_classes):
        if step.op == "out":
            continue
        if not groups or groups[-1][0] != step.group:
            groups.append((step.group, []))
        groups[-1][1].append(_token(step))
    return " | ".join(["-".join(tokens) for _, tokens in groups] + [_protocol(v)])


def _protocol(v: Mapping[str, Any]) -> str:
    """``adam 1e-3 x.9 b128`` for the report's protocol; other knobs only when they differ."""
    out = [v["optimizer"]]
    if v["optimizer"] == "sgd":
        if v["momentum"] != DOMAINS["momentum"].default:
            out.append(f"m{_num(v['momentum'])}")
        if v["nesterov"]:
            out.append("nesterov")
    out.append(_num(v["learning_rate"]))
    if v["weight_decay"] and v["optimizer"] in ("adamw", "sgd"):
        out.append(f"wd{_num(v['weight_decay'])}")
    if v["schedule"] == "exponential":
        out.append(f"x{_num(v['lr_decay'])}")
    elif v["schedule"] == "cosine":
        out += ["cos"] + ([f"w{v['warmup_epochs']}"] if v["warmup_epochs"] else [])
    else:
        out.append("1cycle")
    out.append(f"b{v['batch_size']}")
    if v["l2"]:
        out.append(f"l2={_num(v['l2'])}")
    if v["label_smoothing"]:
        out.append(f"ls{_num(v['label_smoothing'])}")
    if v["ema"]:
        out.append("ema" + format(v["ema"], "g").removeprefix("0"))  # .999, not 1.
    if v["swa_epochs"]:
        out.append(f"swa{v['swa_epochs']}")
    if v["tta"]:
        out.append("tta")
    return " ".join(out)


def _token(step: Step) -> str:
    a = step.args
    return {
        "conv": lambda: f"C{a[0]}" + (f"k{a[1]}" if a and a[1] != 3 else ""),
        "bn": lambda: "BN",
        "pool": lambda: "P",
        "drop": lambda: "D" + _num(a[0]) if a else "D",
        "res": lambda: f"R{a[0]}x{a[1]}" + ("p" if a[2] == "projection" else "") + ("bn" if a[3] else ""),
        "stage": lambda: f"B{a[0]}x{a[1]}" + (f"/{a[2]}" if a[2] != 1 else ""),
        "augment": lambda: _augment_token(*a),
        "relu": lambda: "relu",
        "flatten": lambda: "F",
        "gap": lambda: "GAP",
        "dense": lambda: f"D{a[0]}" + ("" if a[1] == "relu" else f"{a[1]}"),
        "backbone": lambda: f"{a[0]}({a[1]})",
        "out": lambda: f"out{a[0]}",
    }[step.op]()


def _augment_token(translate: int, flip: bool, erase: float, size: int) -> str:
    """``aug:t2+f+e.5``: shift 2 pixels, flip, erase with probability .5 (``e.5s8``: 8x8)."""
    parts = [f"t{translate}"] if translate else []
    parts += ["f"] if flip else []
    if erase:
        default = DOMAINS["aug_erase_size"].default
        parts.append(f"e{_num(float(erase))}" + (f"s{size}" if size != default else ""))
    return "aug:" + "+".join(parts)


def _num(x: float) -> str:
    if isinstance(x, float) and 0 < x < 1 and x >= 0.01:
        return f"{x:.2f}".rstrip("0").lstrip("0") or "0"
    if isinstance(x, float) and x < 0.01 and x != 0:
        return f"{x:.0e}".replace("e-0", "e-")
    return f"{x:g}"


# --------------------------------------------------------------------------- Keras


def build_model(values: Mapping[str, Any], num_classes: int = 10, compile: bool = True,
                weights_path: str | None = None, policy: str | None = None):
    """Build (and compile) the Keras model for a set of hyperparameter values.

    ``policy`` (a Keras dtype policy such as ``mixed_bfloat16``; None: Keras' current one) is
    what every layer is created with: a layer keeps the policy it was created under, and
    compiling a ``mixed_float16`` model adds loss scaling, so the policy is set for this call
    only and restored after it (``dtype_policy``)."""
    import keras

    v = resolve(values)
    steps = plan_layers(v, num_classes)
    with dtype_policy(policy):
        reg = keras.regularizers.L2(v["l2"]) if v["l2"] else None
        inputs = keras.Input(INPUT_SHAPE)
        x = inputs
        for step in steps:
            x = _apply(step, x, reg, weights_path, v["bn_momentum"])
        model = keras.Model(inputs, x, name="fmnist")
        if compile:
            model.compile(optimizer=make_optimizer(v), loss=make_loss(v), metrics=["accuracy"])
    return model


@contextmanager
def dtype_policy(policy: str | None) -> Iterator[None]:
    """Keras' global dtype policy set to ``policy`` while the block runs, then restored (it is
    process-wide: a caller's own models must not change precision behind its back)."""
    if policy is None:
        yield
        return
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def make_loss(v: Mapping[str, Any]):
    """The report's sparse cross-entropy; smoothed targets only when label_smoothing > 0."""
    if not v["label_smoothing"]:
        return "sparse_categorical_crossentropy"
    from fmnist_search.losses import SparseSmoothedCrossentropy

    return SparseSmoothedCrossentropy(v["label_smoothing"])


def _apply(step: Step, x, reg, weights_path: str | None, bn_momentum: float = 0.99):
    from keras import layers

    a = step.args
    if step.op == "conv":
        return layers.Conv2D(a[0], a[1], padding="same", activation="relu",
                             kernel_regularizer=reg)(x)
    if step.op == "bn":
        return layers.BatchNormalization(momentum=bn_momentum)(x)
    if step.op == "pool":
        return layers.MaxPooling2D(2)(x)
    if step.op == "drop":
        return layers.Dropout(a[0])(x)
    if step.op == "res":
        return _residual_block(x, *a, reg=reg, bn_momentum=bn_momentum)
    if step.op == "stage":
        return _preact_stage(x, *a, reg=reg, bn_momentum=bn_momentum)
    if step.op == "augment":
        from fmnist_search.augment import layers_for

        for layer in layers_for(*a):
            x = layer(x)
        return x
    if step.op == "relu":
        return layers.Activation("relu")(x)
    if step.op == "flatten":
        return layers.Flatten()(x)
    if step.op == "gap":
        return layers.GlobalAveragePooling2D()(x)
    if step.op == "dense":
        return layers.Dense(a[0], activation=a[1])(x)
    if step.op == "backbone":
        return _backbone(x, a[1], weights_path)
    if step.op == "out":
        return layers.Dense(a[0], activation="softmax", kernel_regularizer=reg,
                            dtype="float32")(x)
    raise ValueError(step.op)


def _residual_block(x, filters: int, convs: int, shortcut: str, batchnorm: bool, reg,
                    bn_momentum: float = 0.99):
    """Pre-activation block (He et al. 2016): [BN] -> relu -> conv, repeated, plus a shortcut."""
    from keras import layers

    h = x
    for _ in range(convs):
        if batchnorm:
            h = layers.BatchNormalization(momentum=bn_momentum)(h)
        h = layers.Activation("relu")(h)
        h = layers.Conv2D(filters, 3, padding="same", kernel_regularizer=reg)(h)
    if shortcut == "projection" or x.shape[-1] != filters:
        x = layers.Conv2D(filters, 1, padding="same")(x)
    return layers.Add()([x, h])


def _preact_stage(x, filters: int, blocks: int, stride: int, reg, bn_momentum: float = 0.99):
    """One stage of a pre-activation ResNet (He et al. 2016, "Identity Mappings"): blocks of
    BN -> relu -> conv3x3 -> BN -> relu -> conv3x3 plus a shortcut. The first block may halve
    the size (stride 2) and change the width; its shortcut is then a 1x1 projection of the
    pre-activated input. Convolutions have no bias: a batch norm follows each of them.
    """
    from keras import layers

    for b in range(blocks):
        s = stride if b == 0 else 1
        pre = layers.Activation("relu")(layers.BatchNormalization(momentum=bn_momentum)(x))
        shortcut = x
        if s != 1 or x.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=s, use_bias=False,
                                     kernel_regularizer=reg)(pre)
        h = layers.Conv2D(filters, 3, strides=s, padding="same", use_bias=False,
                          kernel_regularizer=reg)(pre)
        h = layers.Activation("relu")(layers.BatchNormalization(momentum=bn_momentum)(h))
        h = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)(h)
        x = layers.Add()([shortcut, h])
    return x


def _backbone(x, weights: str, weights_path: str | None):
    import keras
    from keras import layers

    from fmnist_search.pretrained import WEIGHTS_FILE, resolve_weights

    rgb = layers.Concatenate()([x, x, x])
    resolved = resolve_weights(weights, weights_path)
    try:
        net = keras.applications.ResNet50(
            include_top=False, pooling="avg", input_shape=(None, None, 3), weights=resolved,
        )
    except (ValueError, OSError) as exc:
        if not weights_path:
            raise
        raise UserError(f"--weights {weights_path} could not be loaded into ResNet50 without "
                        f"its top ({exc}); it must be {WEIGHTS_FILE}.") from exc
    return net(rgb)


def make_optimizer(v: Mapping[str, Any]):
    import keras

    lr, name, decay = v["learning_rate"], v["optimizer"], v["weight_decay"]
    # Keras keeps the average in the optimizer and copies it into the model at the end of fit.
    ema = {"use_ema": True, "ema_momentum": v["ema"]} if v["ema"] else {}
    if name == "adam":
        return keras.optimizers.Adam(lr, beta_1=v["beta_1"], beta_2=v["beta_2"], **ema)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=decay, beta_1=v["beta_1"],
                                      beta_2=v["beta_2"], **ema)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, **ema)
    # Keras' decay is decoupled (w -= lr * weight_decay * w, apart from the momentum); None
    # rather than 0 spares a no-op update per variable and step.
    return keras.optimizers.SGD(lr, momentum=v["momentum"], nesterov=bool(v["nesterov"]),
                                weight_decay=decay or None, **ema)
