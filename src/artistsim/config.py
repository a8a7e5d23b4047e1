"""Typed configuration: one dataclass per model, per loss, per augmentation and per run.

Why dataclasses loaded from TOML: every hyperparameter of the seed lives in exactly one
place (the defaults below are the seed's), a config file overrides only what it names,
and a typo in a key is an error instead of a silently ignored setting. Each field's type
hint and its bound (`ranged(default, "0 < x < 1")`) are checked at load by
config_check, so a wrong value is a one-line error naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn, Union

from artistsim.config_check import ConfigError, build, ranged, required

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass
class EncoderConfig:
    """What both encoders share: sizes, pooling, the padding mask, the pooled-statistics LDA branch."""

    input_dim: int = ranged(512, "x >= 1")
    num_heads: int = ranged(4, "x >= 1")
    num_layers: int = ranged(3, "x >= 1")
    ffn_dim: int = ranged(2048, "x >= 1")
    dropout: float = ranged(0.1, "0 <= x < 1")
    # "stats" / "attentive_stats": mean and std over time (x-vector / ECAPA-TDNN); "netvlad" /
    # "ghostvlad": residuals around vlad_clusters learned centres (+ ghost_clusters dropped).
    pooling: Literal["mean", "attention", "stats", "attentive_stats", "netvlad", "ghostvlad"] = "mean"
    vlad_clusters: int = ranged(8, "x >= 1")
    ghost_clusters: int = ranged(2, "x >= 0")
    projector_hidden: int = ranged(512, "x >= 1")
    embedding_dim: int = ranged(128, "x >= 1")
    # "batchnorm": a BatchNorm1d after the projector (models/heads.py: build_embedding_norm).
    embedding_norm: Literal["none", "batchnorm"] = "none"
    # "lda": the input projection starts as a frame-level LDA of the training artists
    # (training/frontend.py: init_input_from_lda); needs d_model < input_dim.
    input_init: Literal["random", "lda"] = "random"
    # "global": each frame channel standardised by the training frames' mean and standard
    # deviation (models/heads.py: InputNorm, fitted by training/frontend.py: fit_input_norm);
    # "none": raw frames (the seed).
    input_norm: Literal["none", "global"] = "none"
    # The seed neither masked padded frames in attention nor excluded them from pooling;
    # False reproduces it exactly.
    mask_padding: bool = True
    # Pooled-statistics LDA branch (see models/frontend.py): "off" (the seed), "residual"
    # (embedding = LDA projection + encoder output, the encoder's last layer zero-initialised
    # so training starts exactly at the LDA baseline) or "concat" (L2-normalised LDA part,
    # weighted by lda_weight, beside the L2-normalised encoder part).
    lda_branch: Literal["off", "residual", "concat"] = "off"
    lda_trainable: bool = False
    lda_weight: float = ranged(1.0, "x > 0")
    # Within-artist scatter shrinkage (times its mean eigenvalue) and LDA directions kept
    # (0 = embedding_dim; the rest of the branch is 0). lda_ridge 0 chooses both on the
    # validation artists from evaluation.inference.LDA_GRID.
    lda_ridge: float = ranged(1e-3, "x >= 0")
    lda_components: int = ranged(0, "x >= 0")


@dataclass
class TransformerConfig(EncoderConfig):
    """The seed's nn.TransformerEncoder: d_model 512, 4 heads, 3 layers, ff 2048."""

    kind: Literal["transformer"] = "transformer"
    d_model: int = ranged(512, "x >= 1")


@dataclass
class ConformerConfig(EncoderConfig):
    """The seed's torchaudio Conformer: input 512, 4 heads, ffn 128, 4 layers, kernel 31."""

    kind: Literal["conformer"] = "conformer"
    num_layers: int = ranged(4, "x >= 1")
    ffn_dim: int = ranged(128, "x >= 1")
    # Block width. 0 = input_dim (the seed: torchaudio's Conformer works at its input
    # width); a smaller value adds a linear input projection, for scaled-down configs.
    d_model: int = ranged(0, "x >= 0")
    depthwise_kernel: int = ranged(31, "x >= 1")

    @property
    def width(self) -> int:
        """The blocks' width: d_model, or input_dim when d_model is 0."""
        return self.d_model or self.input_dim


@dataclass
class RandomFeatureConfig:
    """Random-feature LDA (models/random_features.py): fitted in closed form, no curriculum.

    `components` are the numbers of whitened principal directions of the frames tried and
    the LDA's shrinkage and directions come from `evaluation.inference.LDA_GRID`; all are
    chosen on the validation artists. [[stages]] and [loss] do not apply.
    """

    kind: Literal["rflda"] = "rflda"
    input_dim: int = ranged(512, "x >= 1")
    num_features: int = ranged(1024, "x >= 1")  # random directions |r . y| pooled per track
    embedding_dim: int = ranged(128, "x >= 1")
    components: tuple[int, ...] = ranged((32, 64, 96, 128, 192, 256), "x >= 1")
    fit_frames: int = ranged(200_000, "x >= 1")  # frames sampled (whole tracks at random) for the principal directions


ModelConfig = Union[TransformerConfig, ConformerConfig, RandomFeatureConfig]


@dataclass
class LossConfig:
    """Weighted sum of metric-learning losses (the seed's defaults), or ArcFace.

    `kind = "seed"` is MultiSimilarity + Circle + TripletMargin with `weights`;
    a weight of 0 drops the term. `kind = "arcface"` / `"subcenter_arcface"` train
    class weights over the training artists (1st place's loss).
    """

    kind: Literal["seed", "arcface", "subcenter_arcface"] = "seed"
    weights: tuple[float, float, float] = ranged((1.0, 0.025, 1.0), "x >= 0")
    ms_alpha: float = ranged(2.0, "x > 0")
    ms_beta: float = ranged(50.0, "x > 0")
    ms_base: float = ranged(1.0, "-1 <= x <= 1")  # a cosine similarity threshold
    circle_m: float = ranged(0.4, "0 <= x <= 1")
    circle_gamma: float = ranged(80.0, "x > 0")
    triplet_margin: float = ranged(0.05, "x >= 0")
    triplets_per_anchor: int = ranged(10, "x >= 1")
    # "auto" switches to the chunked, memory-efficient path above this batch size.
    memory_efficient: Literal["auto", "always", "never"] = "auto"
    memory_efficient_above: int = ranged(4096, "x >= 1")
    arcface_margin_deg: float = ranged(28.6, "0 <= x < 90")  # 0.5 rad, as the 1st place used
    arcface_scale: float = ranged(30.0, "x > 0")
    subcenters: int = ranged(3, "x >= 1")
    arcface_lr: float = ranged(1e-2, "x > 0")
    # The margin grows linearly from 0 to arcface_margin_deg over this many epochs of the
    # run (0 = the full margin from the first step), as speaker-verification recipes do.
    margin_warmup_epochs: float = ranged(0.0, "x >= 0")
    # kind "seed" plus a classifier over every training artist: seed + classifier_weight *
    # (sub-center) ArcFace. 0 (the default) is the seed's loss alone, unchanged.
    classifier_weight: float = ranged(0.0, "x >= 0")
    classifier: Literal["arcface", "subcenter_arcface"] = "arcface"
    # Cross-batch memory (pytorch-metric-learning's CrossBatchMemory): the last `xbm_size`
    # training embeddings (detached, with their artists) are kept, and seed + xbm_weight *
    # MultiSimilarity(batch against that memory) is minimised, so each step sees many more
    # artists than the batch holds. 0 (the default) is the seed's loss alone, unchanged.
    # The memory is emptied at the start of every curriculum stage (another crop length).
    xbm_size: int = ranged(0, "x >= 0")
    xbm_weight: float = ranged(1.0, "x >= 0")


@dataclass
class AugmentConfig:
    """The seed's four batch augmentations; each try is applied with probability `p`.

    Counts are inclusive ranges of tries per track, widths inclusive ranges of
    channels or frames per band/block.
    """

    p: float = ranged(0.3, "0 <= x <= 1")
    zero_bands: tuple[int, int] = ranged((0, 10), "x >= 0")
    zero_band_width: tuple[int, int] = ranged((2, 5), "x >= 1")
    zero_blocks: tuple[int, int] = ranged((0, 5), "x >= 0")
    zero_block_width: tuple[int, int] = ranged((2, 5), "x >= 1")
    copy_bands: tuple[int, int] = ranged((0, 10), "x >= 0")
    copy_band_width: tuple[int, int] = ranged((2, 5), "x >= 1")
    copy_blocks: tuple[int, int] = ranged((0, 5), "x >= 0")
    copy_block_width: tuple[int, int] = ranged((2, 10), "x >= 1")
    # Frame resampling (the first-place recipe): with probability `resample_p` a track's
    # real frames are replaced by as many frames drawn uniformly at random from them, kept
    # in time order (some repeat, some drop out). Applied in every stage, augment or not,
    # before the four above. 0 (the default) draws nothing: the seed's stream is unchanged.
    resample_p: float = ranged(0.0, "0 <= x <= 1")


@dataclass
class StageConfig:
    """One curriculum stage: whole artists per batch, crop length, learning rate."""

    artists_per_batch: int = required("x >= 2")  # a batch with one artist has no negatives
    crop: int = required("1 <= x <= 81")  # frames; the competition's tracks have 81
    lr: float = required("x > 0")
    max_epochs: int = ranged(100, "x >= 1")
    augment: bool = False


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data directory."""

    model: ModelConfig = field(default_factory=TransformerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    stages: list[StageConfig] = field(default_factory=list)
    weight_decay: float = ranged(1e-3, "x >= 0")
    patience: int = ranged(5, "x >= 1")
    val_fraction: float = ranged(0.1, "0 < x < 1")
    # Validation holds at least this many artists (never more than half of them): with few
    # training artists (25 on the real-music set) 10% is 2-3 artists, on which the inference
    # add-ons and the best epoch are chosen by noise. 0 keeps the fraction alone (the seed's).
    val_min_artists: int = ranged(0, "x >= 0")
    seed: int = ranged(0, "x >= 0")
    pad_mode: Literal["wrap", "zero"] = "wrap"
    eval_batch_size: int = ranged(512, "x >= 1")
    num_workers: int = ranged(1, "x >= 0")  # background batch-loading threads
    max_val_tracks: int = ranged(0, "x >= 0")  # 0 = the whole validation split
    # Encoder micro-batches of at most this many frames (tracks x crop) for larger
    # batches: activation memory of one micro-batch instead of the whole batch, for one
    # extra forward pass (see train.forward_backward). 0 = off.
    micro_batch_frames: int = ranged(0, "x >= 0")
    # A curriculum stage whose best validation nDCG is below the best so far is dropped:
    # the next stage starts from the best weights instead of that stage's (the log says
    # so). False is the seed: each stage starts from the previous stage's best.
    stage_fallback: bool = False
    # Each stage's learning rates rise linearly from 0 over this many epochs (0 = off):
    # every stage starts a fresh AdamW, whose first steps are the least reliable.
    lr_warmup_epochs: float = ranged(0.0, "x >= 0")
    # Checkpoint averaging (SWA): the weights of the last stage's `swa_epochs` epochs that
    # end at its best one are averaged; the average replaces best.pt only if it scores
    # higher on validation. 0 = off.
    swa_epochs: int = ranged(0, "x >= 0")


def train_config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Turn a parsed TOML document (or a checkpoint's saved config) into a checked TrainConfig.

    Every field is checked against its type hint and bound (config_check.build); the
    checks between fields that no single hint can say follow.
    """
    cfg = build(TrainConfig, data, where)
    validate_train_config(cfg, where)
    return cfg


def validate_train_config(cfg: TrainConfig, where: str = "config") -> None:
    """Reject combinations of values that would only fail deep inside training."""
    def fail(path: str, message: str) -> NoReturn:
        raise ConfigError(f"{where}: {path}: {message}")

    m = cfg.model
    if isinstance(m, RandomFeatureConfig):
        if not m.components:
            fail("[model] components", "expected at least one number of directions, found none")
        if max(m.components) > m.input_dim:
            fail("[model] components", f"expected each <= input_dim ({m.input_dim}), found {max(m.components)}")
        return
    if not cfg.stages:
        fail("stages", "at least one [[stages]] table is required")
    width = m.width if isinstance(m, ConformerConfig) else m.d_model
    if width % m.num_heads:
        fail("[model] num_heads", f"expected a divisor of the model width ({width}), found {m.num_heads}")
    if isinstance(m, ConformerConfig) and m.depthwise_kernel % 2 != 1:
        fail("[model] depthwise_kernel", f"expected an odd number ('same' padding), found {m.depthwise_kernel}")
    if m.lda_components > m.embedding_dim:
        fail("[model] lda_components", f"expected <= embedding_dim ({m.embedding_dim}), found {m.lda_components}")
    if cfg.loss.xbm_size and cfg.loss.kind != "seed":
        fail("[loss] xbm_size", 'expected 0 unless kind = "seed" (the memory feeds the pair losses)')
    for f in dataclasses.fields(AugmentConfig):
        value = getattr(cfg.augment, f.name)
        if isinstance(value, tuple) and value[0] > value[1]:
            fail(f"[augment] {f.name}", f"expected an inclusive range [low, high] with low <= high, found {list(value)}")


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (`artistsim/configs/NAME`).

    Why package data: after a plain `pip install .` there is no source tree to find
    `configs/` in; the repository's top-level `configs` is a link to the same folder.
    """
    path = Path(str(resources.files("artistsim").joinpath("configs", name)))
    if not path.is_file():
        known = sorted(p.name for p in path.parent.glob("**/*.toml"))
        raise ConfigError(f"{name}: no such packaged config; known: {known}")
    return path


def load_train_config(path: str | Path) -> TrainConfig:
    """Load a TrainConfig from a TOML file; errors name the file and the key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return train_config_from_dict(data, where=str(path))


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form (lists for tuples) for checkpoints and JSON logs."""
    return dataclasses.asdict(cfg)
