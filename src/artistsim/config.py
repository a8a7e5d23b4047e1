"""Typed configuration: one dataclass per model, per loss, per augmentation and per run.

Why dataclasses loaded from TOML: every hyperparameter of the seed lives in exactly one
place (the defaults below are the seed's), a config file overrides only what it names,
and a typo in a key is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A config file names an unknown key or holds a value of the wrong kind."""


@dataclass
class TransformerConfig:
    """The seed's nn.TransformerEncoder: d_model 512, 4 heads, 3 layers, ff 2048."""

    kind: Literal["transformer"] = "transformer"
    input_dim: int = 512
    d_model: int = 512
    num_heads: int = 4
    num_layers: int = 3
    ffn_dim: int = 2048
    dropout: float = 0.1
    # "stats" / "attentive_stats": mean and std over time (x-vector / ECAPA-TDNN); "netvlad" /
    # "ghostvlad": residuals around vlad_clusters learned centres (+ ghost_clusters dropped).
    pooling: Literal["mean", "attention", "stats", "attentive_stats", "netvlad", "ghostvlad"] = "mean"
    vlad_clusters: int = 8
    ghost_clusters: int = 2
    projector_hidden: int = 512
    embedding_dim: int = 128
    # "batchnorm": a BatchNorm1d after the projector (models/heads.py: build_embedding_norm).
    embedding_norm: Literal["none", "batchnorm"] = "none"
    # The seed neither masked padded frames in attention nor excluded them from pooling;
    # False reproduces it exactly.
    mask_padding: bool = True
    # Pooled-statistics LDA branch (see models/frontend.py): "off" (the seed), "residual"
    # (embedding = LDA projection + encoder output, the encoder's last layer zero-initialised
    # so training starts exactly at the LDA baseline) or "concat" (L2-normalised LDA part,
    # weighted by lda_weight, beside the L2-normalised encoder part).
    lda_branch: Literal["off", "residual", "concat"] = "off"
    lda_trainable: bool = False
    lda_weight: float = 1.0
    # Within-artist scatter shrinkage (times its mean eigenvalue) and LDA directions kept
    # (0 = embedding_dim; the rest of the branch is 0). lda_ridge 0 chooses both on the
    # validation artists from evaluation.inference.LDA_GRID.
    lda_ridge: float = 1e-3
    lda_components: int = 0


@dataclass
class ConformerConfig:
    """The seed's torchaudio Conformer: input 512, 4 heads, ffn 128, 4 layers, kernel 31."""

    kind: Literal["conformer"] = "conformer"
    input_dim: int = 512
    # Block width. 0 = input_dim (the seed: torchaudio's Conformer works at its input
    # width); a smaller value adds a linear input projection, for scaled-down configs.
    d_model: int = 0
    num_heads: int = 4
    ffn_dim: int = 128
    num_layers: int = 4
    depthwise_kernel: int = 31
    dropout: float = 0.1
    # "stats" / "attentive_stats": mean and std over time (x-vector / ECAPA-TDNN); "netvlad" /
    # "ghostvlad": residuals around vlad_clusters learned centres (+ ghost_clusters dropped).
    pooling: Literal["mean", "attention", "stats", "attentive_stats", "netvlad", "ghostvlad"] = "mean"
    vlad_clusters: int = 8
    ghost_clusters: int = 2
    projector_hidden: int = 512
    embedding_dim: int = 128
    # "batchnorm": a BatchNorm1d after the projector (models/heads.py: build_embedding_norm).
    embedding_norm: Literal["none", "batchnorm"] = "none"
    mask_padding: bool = True
    # Pooled-statistics LDA branch (see models/frontend.py): "off" (the seed), "residual"
    # (embedding = LDA projection + encoder output, the encoder's last layer zero-initialised
    # so training starts exactly at the LDA baseline) or "concat" (L2-normalised LDA part,
    # weighted by lda_weight, beside the L2-normalised encoder part).
    lda_branch: Literal["off", "residual", "concat"] = "off"
    lda_trainable: bool = False
    lda_weight: float = 1.0
    # Within-artist scatter shrinkage (times its mean eigenvalue) and LDA directions kept
    # (0 = embedding_dim; the rest of the branch is 0). lda_ridge 0 chooses both on the
    # validation artists from evaluation.inference.LDA_GRID.
    lda_ridge: float = 1e-3
    lda_components: int = 0

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
    input_dim: int = 512
    num_features: int = 1024  # random directions |r . y| pooled per track
    embedding_dim: int = 128
    components: tuple[int, ...] = (32, 64, 96, 128, 192, 256)
    fit_frames: int = 200_000  # frames sampled (whole tracks at random) for the principal directions


ModelConfig = Union[TransformerConfig, ConformerConfig, RandomFeatureConfig]


@dataclass
class LossConfig:
    """Weighted sum of metric-learning losses (the seed's defaults), or ArcFace.

    `kind = "seed"` is MultiSimilarity + Circle + TripletMargin with `weights`;
    a weight of 0 drops the term. `kind = "arcface"` / `"subcenter_arcface"` train
    class weights over the training artists (1st place's loss).
    """

    kind: Literal["seed", "arcface", "subcenter_arcface"] = "seed"
    weights: tuple[float, float, float] = (1.0, 0.025, 1.0)
    ms_alpha: float = 2.0
    ms_beta: float = 50.0
    ms_base: float = 1.0
    circle_m: float = 0.4
    circle_gamma: float = 80.0
    triplet_margin: float = 0.05
    triplets_per_anchor: int = 10
    # "auto" switches to the chunked, memory-efficient path above this batch size.
    memory_efficient: Literal["auto", "always", "never"] = "auto"
    memory_efficient_above: int = 4096
    arcface_margin_deg: float = 28.6  # 0.5 rad, as the 1st place used
    arcface_scale: float = 30.0
    subcenters: int = 3
    arcface_lr: float = 1e-2
    # The margin grows linearly from 0 to arcface_margin_deg over this many epochs of the
    # run (0 = the full margin from the first step), as speaker-verification recipes do.
    margin_warmup_epochs: float = 0.0
    # kind "seed" plus a classifier over every training artist: seed + classifier_weight *
    # (sub-center) ArcFace. 0 (the default) is the seed's loss alone, unchanged.
    classifier_weight: float = 0.0
    classifier: Literal["arcface", "subcenter_arcface"] = "arcface"
    # Cross-batch memory (pytorch-metric-learning's CrossBatchMemory): the last `xbm_size`
    # training embeddings (detached, with their artists) are kept, and seed + xbm_weight *
    # MultiSimilarity(batch against that memory) is minimised, so each step sees many more
    # artists than the batch holds. 0 (the default) is the seed's loss alone, unchanged.
    # The memory is emptied at the start of every curriculum stage (another crop length).
    xbm_size: int = 0
    xbm_weight: float = 1.0


@dataclass
class AugmentConfig:
    """The seed's four batch augmentations; each try is applied with probability `p`.

    Counts are inclusive ranges of tries per track, widths inclusive ranges of
    channels or frames per band/block.
    """

    p: float = 0.3
    zero_bands: tuple[int, int] = (0, 10)
    zero_band_width: tuple[int, int] = (2, 5)
    zero_blocks: tuple[int, int] = (0, 5)
    zero_block_width: tuple[int, int] = (2, 5)
    copy_bands: tuple[int, int] = (0, 10)
    copy_band_width: tuple[int, int] = (2, 5)
    copy_blocks: tuple[int, int] = (0, 5)
    copy_block_width: tuple[int, int] = (2, 10)
    # Frame resampling (the first-place recipe): with probability `resample_p` a track's
    # real frames are replaced by as many frames drawn uniformly at random from them, kept
    # in time order (some repeat, some drop out). Applied in every stage, augment or not,
    # before the four above. 0 (the default) draws nothing: the seed's stream is unchanged.
    resample_p: float = 0.0


@dataclass
class StageConfig:
    """One curriculum stage: whole artists per batch, crop length, learning rate."""

    artists_per_batch: int
    crop: int
    lr: float
    max_epochs: int = 100
    augment: bool = False


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data directory."""

    model: ModelConfig = field(default_factory=TransformerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    stages: list[StageConfig] = field(default_factory=list)
    weight_decay: float = 1e-3
    patience: int = 5
    val_fraction: float = 0.1
    seed: int = 0
    pad_mode: Literal["wrap", "zero"] = "wrap"
    eval_batch_size: int = 512
    num_workers: int = 1  # background batch-loading threads
    max_val_tracks: int = 0  # 0 = the whole validation split
    # Encoder micro-batches of at most this many frames (tracks x crop) for larger
    # batches: activation memory of one micro-batch instead of the whole batch, for one
    # extra forward pass (see train.forward_backward). 0 = off.
    micro_batch_frames: int = 0
    # A curriculum stage whose best validation nDCG is below the best so far is dropped:
    # the next stage starts from the best weights instead of that stage's (the log says
    # so). False is the seed: each stage starts from the previous stage's best.
    stage_fallback: bool = False
    # Each stage's learning rates rise linearly from 0 over this many epochs (0 = off):
    # every stage starts a fresh AdamW, whose first steps are the least reliable.
    lr_warmup_epochs: float = 0.0
    # Checkpoint averaging (SWA): the weights of the last stage's `swa_epochs` epochs that
    # end at its best one are averaged; the average replaces best.pt only if it scores
    # higher on validation. 0 = off.
    swa_epochs: int = 0


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass `cls` from a TOML table, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _model_from_dict(data: dict[str, Any], where: str) -> ModelConfig:
    kind = data.get("kind", "transformer")
    classes = {"transformer": TransformerConfig, "conformer": ConformerConfig, "rflda": RandomFeatureConfig}
    if kind not in classes:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {sorted(classes)}")
    return _build(classes[kind], data, where)


def train_config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Turn a parsed TOML document into a validated TrainConfig."""
    data = dict(data)
    model = _model_from_dict(data.pop("model", {}), f"{where}[model]")
    loss = _build(LossConfig, data.pop("loss", {}), f"{where}[loss]")
    augment = _build(AugmentConfig, data.pop("augment", {}), f"{where}[augment]")
    raw_stages = data.pop("stages", [])
    stages = [_build(StageConfig, s, f"{where}[[stages]] #{i + 1}") for i, s in enumerate(raw_stages)]
    cfg = _build(TrainConfig, data, where)
    cfg.model, cfg.loss, cfg.augment, cfg.stages = model, loss, augment, stages
    validate_train_config(cfg, where)
    return cfg


def validate_train_config(cfg: TrainConfig, where: str = "config") -> None:
    """Reject values that would only fail deep inside training."""
    if isinstance(cfg.model, RandomFeatureConfig):
        m = cfg.model
        if m.num_features < 1 or m.embedding_dim < 1 or m.fit_frames < 1:
            raise ConfigError(f"{where}[model]: num_features, embedding_dim and fit_frames must be >= 1")
        if not m.components or any(not 1 <= k <= m.input_dim for k in m.components):
            raise ConfigError(f"{where}[model].components: each must be in 1..input_dim ({m.input_dim})")
        if not 0.0 < cfg.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction must be in (0, 1)")
        return
    if not cfg.stages:
        raise ConfigError(f"{where}: at least one [[stages]] table is required")
    for i, s in enumerate(cfg.stages, 1):
        if s.artists_per_batch < 2:
            raise ConfigError(f"{where}: stage {i}: artists_per_batch must be >= 2")
        if not 1 <= s.crop <= 81:
            raise ConfigError(f"{where}: stage {i}: crop must be in 1..81, got {s.crop}")
        if s.lr <= 0 or s.max_epochs < 1:
            raise ConfigError(f"{where}: stage {i}: lr must be > 0 and max_epochs >= 1")
    if len(cfg.loss.weights) != 3:
        raise ConfigError(f"{where}[loss].weights: expected 3 numbers (ms, circle, triplet)")
    for name, value, known in (("lda_branch", cfg.model.lda_branch, ("off", "residual", "concat")),
                               ("classifier", cfg.loss.classifier, ("arcface", "subcenter_arcface"))):
        if value not in known:
            raise ConfigError(f"{where}: {name} must be one of {known}, got {value!r}")
    m = cfg.model
    if m.vlad_clusters < 1 or m.ghost_clusters < 0:
        raise ConfigError(f"{where}[model]: vlad_clusters must be >= 1 and ghost_clusters >= 0")
    if cfg.loss.margin_warmup_epochs < 0 or cfg.lr_warmup_epochs < 0 or cfg.swa_epochs < 0:
        raise ConfigError(f"{where}: margin_warmup_epochs, lr_warmup_epochs and swa_epochs must be >= 0")
    if cfg.loss.classifier_weight < 0:
        raise ConfigError(f"{where}[loss].classifier_weight must be >= 0")
    if cfg.loss.xbm_size < 0 or cfg.loss.xbm_weight < 0:
        raise ConfigError(f"{where}[loss]: xbm_size and xbm_weight must be >= 0")
    if cfg.loss.xbm_size and cfg.loss.kind != "seed":
        raise ConfigError(f"{where}[loss]: xbm_size needs kind = \"seed\" (the memory feeds the pair losses)")
    if not 0.0 <= cfg.augment.resample_p <= 1.0:
        raise ConfigError(f"{where}[augment].resample_p must be in [0, 1]")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"{where}.val_fraction must be in (0, 1)")


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
