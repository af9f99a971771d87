"""The training config: one YAML file, five sections, each a dataclass documented field by field.

The defaults *are* the embedded default config (``configs/train_config.yaml`` spells them out,
the package ships the same text for ``perfmode config init``, and a test keeps all three
equal). A file is layered over that default key by key: whatever it does not set keeps the
default's value at that place. Unknown keys and bad values fail before anything starts,
naming the key and its line.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from perfmode.config.env import EnvConfig

# The modes: and auto: sections live in config.modes; importers of this module keep
# finding every section here.
from perfmode.config.modes import AutoConfig as AutoConfig
from perfmode.config.modes import ModeProfile as ModeProfile
from perfmode.config.modes import ModesConfig as ModesConfig
from perfmode.config.modes import available_cores as available_cores
from perfmode.config.sections import check, from_mapping, to_mapping
from perfmode.config.sweep import SweepConfig, check_space_against
from perfmode.config.yamlfile import read_yaml_file
from perfmode.errors import PerfmodeError, UsageError

DEFAULT_CONFIG_RESOURCE = "default_config.yaml"

# Sizes far beyond any MLP policy for this env (64×64 by default), refused before anything
# is allocated: a typo like `net_arch: [100000000]` would otherwise take the machine's
# memory, or get the trainer killed, instead of being one line.
MAX_LAYERS = 16
MAX_LAYER_WIDTH = 65_536
MAX_HIDDEN_WEIGHTS = 50_000_000
MAX_ROLLOUT = 4_194_304
"""Transitions in one rollout (n_steps × n_envs); the default is 4,096."""


@dataclass(frozen=True)
class PPOConfig:
    """Stable-Baselines3 PPO hyperparameters (quiet mode runs them unchanged)."""

    n_steps: int = 512
    """Steps each env collects per rollout; the rollout holds n_steps × n_envs transitions."""
    batch_size: int = 128
    """Minibatch size in quiet mode; a mode's multiplier scales it before each update."""
    n_epochs: int = 4
    """Passes over the rollout per update in quiet mode; scaled by the mode's multiplier."""
    learning_rate: float = 3e-4
    """Adam step size (constant)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE bias/variance trade-off."""
    clip_range: float = 0.2
    """PPO policy clipping."""
    ent_coef: float = 0.01
    """Entropy bonus: keeps the agent trying positions early on."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient clipping."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of the policy and value networks (cannot change on resume)."""

    def __post_init__(self) -> None:
        check(self.n_steps >= 2, "ppo.n_steps", self.n_steps, "at least 2")
        check(self.batch_size >= 2, "ppo.batch_size", self.batch_size, "at least 2")
        check(self.n_epochs >= 1, "ppo.n_epochs", self.n_epochs, "at least 1")
        check(0 < self.learning_rate < 1, "ppo.learning_rate", self.learning_rate, "in (0, 1)")
        check(0 < self.gamma <= 1, "ppo.gamma", self.gamma, "in (0, 1]")
        check(0 < self.gae_lambda <= 1, "ppo.gae_lambda", self.gae_lambda, "in (0, 1]")
        check(0 < self.clip_range < 1, "ppo.clip_range", self.clip_range, "in (0, 1)")
        check(self.ent_coef >= 0, "ppo.ent_coef", self.ent_coef, ">= 0")
        check(self.vf_coef >= 0, "ppo.vf_coef", self.vf_coef, ">= 0")
        check(self.max_grad_norm > 0, "ppo.max_grad_norm", self.max_grad_norm, "> 0")
        check(
            1 <= len(self.net_arch) <= MAX_LAYERS
            and all(1 <= n <= MAX_LAYER_WIDTH for n in self.net_arch),
            "ppo.net_arch",
            self.net_arch,
            f"a list of 1 to {MAX_LAYERS} layer sizes, each from 1 to {MAX_LAYER_WIDTH:,}",
        )
        weights = sum(a * b for a, b in itertools.pairwise(self.net_arch))
        check(
            weights <= MAX_HIDDEN_WEIGHTS,
            "ppo.net_arch",
            self.net_arch,
            f"layers whose weights between them stay under {MAX_HIDDEN_WEIGHTS // 10**6} "
            f"million (these need {weights / 1e6:,.0f} million per network)",
        )


@dataclass(frozen=True)
class TrainingConfig:
    """How long to train, where to save, on what hardware."""

    total_timesteps: int = 1_000_000
    """Target of the whole run (resuming continues towards it; --timesteps overrides)."""
    checkpoint_freq: int = 10_000
    """Save a checkpoint every this many timesteps (at the next rollout boundary)."""
    keep_checkpoints: int = 5
    """How many recent checkpoints to keep; the final one is always kept as well."""
    n_envs: int = 8
    """Environments stepped together; can change between resumes."""
    vec_env: Literal["dummy", "subproc"] = "dummy"
    """'dummy' steps envs in the trainer process (the env is ~1% of the time: the default);
    'subproc' gives each env a process."""
    normalize: bool = True
    """Wrap the envs in VecNormalize (observation and reward statistics are checkpointed)."""
    seed: int = 0
    """Seed of every random number generator; resume restores their states instead."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' takes the CPU: PPO with an MLP policy trains faster there than on a GPU (SB3's
    guidance); 'cuda' uses the GPU anyway (an error when torch sees none)."""
    poll_interval: float = 0.2
    """Seconds between looks at settings.json (one stat each)."""
    nice: int = 5
    """CPU priority the trainer lowers itself by (0..19, POSIX nice; on Windows 1-14 is the
    below-normal priority class, 15-19 idle). On an idle machine it costs nothing; while you
    work, your programs and perfmode's own commands go first."""
    startup_counts: bool = True
    """A capped mode's share (quiet's) covers the trainer's start-up: the CPU it took before
    its first step (torch, the data, the model; seconds, again at every trial of a sweep)
    is paid back, resting, before it trains on. False: only training counts."""
    validate_every: int = 0
    """Every this many timesteps (at the next rollout boundary), and when the run finishes,
    score the policy on the validation part (env.validation) and add it to the run's
    validation.json: how ``perfmode sweep`` compares and prunes trials. Scoring changes
    nothing the run learns. Needs env.validation above 0. 0 = never."""

    def __post_init__(self) -> None:
        check(self.total_timesteps >= 1, "training.total_timesteps", self.total_timesteps, ">= 1")
        check(self.checkpoint_freq >= 1, "training.checkpoint_freq", self.checkpoint_freq, ">= 1")
        check(
            self.keep_checkpoints >= 1, "training.keep_checkpoints", self.keep_checkpoints, ">= 1"
        )
        check(1 <= self.n_envs <= 256, "training.n_envs", self.n_envs, "from 1 to 256")
        check(self.seed >= 0, "training.seed", self.seed, ">= 0")
        check(0 <= self.nice <= 19, "training.nice", self.nice, "from 0 to 19")
        check(self.validate_every >= 0, "training.validate_every", self.validate_every, ">= 0")
        check(
            0.05 <= self.poll_interval <= 0.5,
            "training.poll_interval",
            self.poll_interval,
            "from 0.05 to 0.5 seconds",
        )


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    """The trading environment and its data."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """Length, checkpoints, hardware."""
    modes: ModesConfig = field(default_factory=ModesConfig)  # type: ignore[valid-type]
    """Resource profiles, one per mode that computes (see perfmode.base.modes)."""
    auto: AutoConfig = field(default_factory=AutoConfig)
    """What mode ``auto`` counts as someone using the computer."""
    sweep: SweepConfig = field(default_factory=SweepConfig)
    """What ``perfmode sweep`` searches; ``perfmode train`` ignores it."""

    def __post_init__(self) -> None:
        check(
            self.rollout_size <= MAX_ROLLOUT,
            "ppo.n_steps",
            self.ppo.n_steps,
            f"at most {MAX_ROLLOUT // self.training.n_envs:,} with training.n_envs "
            f"{self.training.n_envs} (a rollout of n_steps × n_envs transitions stays under "
            f"{MAX_ROLLOUT:,})",
        )
        if self.sweep.space or self.sweep.seeds is not None:
            # The default space is checked by `perfmode sweep` itself; this one is the file's.
            check_space_against(self)

    @property
    def rollout_size(self) -> int:
        return self.ppo.n_steps * self.training.n_envs

    def with_data(self, data: str | None) -> Config:
        """A copy with ``--data`` applied (see :meth:`EnvConfig.with_data`)."""
        return self if data is None else replace(self, env=self.env.with_data(data))

    def with_overrides(self, **training: Any) -> Config:
        """A copy with some ``training`` fields replaced (the CLI's flags); None means keep."""
        changes = {k: v for k, v in training.items() if v is not None}
        return replace(self, training=replace(self.training, **changes)) if changes else self


def config_from_mapping(data: Any) -> Config:
    """A config from a YAML mapping, layered key by key over the embedded default."""
    if data is not None and not isinstance(data, dict):
        raise UsageError(
            "the top level must be a mapping of sections (env, ppo, training, modes, auto, sweep)"
        )
    return from_mapping(Config, data, "", base=Config())


@dataclass(frozen=True)
class LoadedConfig:
    """A config and where it came from: the file (None: the embedded default) and its lines."""

    config: Config
    path: Path | None = None
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def origin(self, key: str) -> str | None:
        """``file:line`` where the dotted ``key`` was written, or None if the file does not set it."""
        line = self.lines.get(tuple(key.split(".")))
        return f"{self.path}:{line}" if line is not None else None


def load_config_file(path: Path | None = None) -> LoadedConfig:
    """The config at ``path`` (every key it does not set keeps the embedded default's value)."""
    if path is None:
        return LoadedConfig(Config())
    doc = read_yaml_file(Path(path))
    return LoadedConfig(doc.build(config_from_mapping), doc.path, doc.lines)


def load_config(path: Path | None = None) -> Config:
    """The config at ``path``, or the embedded default when None."""
    return load_config_file(path).config


def default_config_text() -> str:
    """The documented default config (``configs/train_config.yaml``), as shipped in the package."""
    return resources.files("perfmode.config").joinpath(DEFAULT_CONFIG_RESOURCE).read_text("utf-8")


def write_default_config(path: Path) -> Path:
    """Write the documented default config to ``path`` (a folder gets ``train_config.yaml``).

    An existing file is never replaced, and a failed write leaves nothing behind.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "train_config.yaml"
    data = default_config_text().encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise UsageError(
            f"{path} already exists; edit it, or pass another path to `perfmode config init`"
        ) from None
    except FileNotFoundError:
        raise UsageError(f"cannot write {path}: folder {path.parent} does not exist") from None
    except OSError as e:
        raise PerfmodeError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        path.unlink(missing_ok=True)  # a half-written config must not look like one
        if isinstance(e, OSError):
            raise PerfmodeError(f"cannot write {path}: {e.strerror}; nothing was written") from None
        raise
    return path


def config_to_mapping(config: Config) -> dict[str, Any]:
    return to_mapping(config)
