"""The ``sweep:`` config section and the search space it describes.

A space maps dotted config keys to a distribution::

    ppo.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]}
    ppo.n_steps: {choice: [256, 512, 1024]}
    training.seed: {int: [0, 1000]}

Every key and range is checked against the config it applies to before anything starts:
each end of a range and each choice must make a config ``perfmode train`` accepts. No Optuna
here, so a bad section fails in the time it takes to read the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from perfmode.config.sections import ConfigKeyError, check, describe, from_mapping
from perfmode.config.yamlfile import read_yaml_file
from perfmode.errors import UsageError

if TYPE_CHECKING:
    from perfmode.config.env import EnvConfig
    from perfmode.config.schema import Config

KINDS = ("log_uniform", "uniform", "int", "choice")

SWEEPABLE = (
    *(
        f"ppo.{k}"
        for k in (
            "n_steps",
            "batch_size",
            "n_epochs",
            "learning_rate",
            "gamma",
            "gae_lambda",
            "clip_range",
            "ent_coef",
            "vf_coef",
            "max_grad_norm",
            "net_arch",
        )
    ),
    "training.seed",
    "training.n_envs",
    "training.normalize",
    *(
        f"env.{k}"
        for k in (
            "window",
            "position_levels",
            "max_position_size",
            "max_drawdown",
            "episode_length",
        )
    ),
)
"""Keys a space may sample: what a run learns with. Keys that say how long, where or how
fast it runs (timesteps, device, modes) are the sweep's or the machine's, not the search's."""

# RL Baselines3 Zoo's PPO space (rl_zoo3/hyperparams_opt.py, sample_ppo_params), kept where
# perfmode's config admits it: learning rates stop at 1e-2 (the config refuses 1, and PPO
# diverges long before), and net_arch's tiny / small / medium are spelled as layer lists.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "ppo.batch_size": {"choice": [8, 16, 32, 64, 128, 256, 512]},
    "ppo.n_steps": {"choice": [8, 16, 32, 64, 128, 256, 512, 1024, 2048]},
    "ppo.gamma": {"choice": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]},
    "ppo.learning_rate": {"log_uniform": [1.0e-5, 1.0e-2]},
    "ppo.ent_coef": {"log_uniform": [1.0e-8, 0.1]},
    "ppo.clip_range": {"choice": [0.1, 0.2, 0.3, 0.4]},
    "ppo.n_epochs": {"choice": [1, 5, 10, 20]},
    "ppo.gae_lambda": {"choice": [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]},
    "ppo.max_grad_norm": {"choice": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 5]},
    "ppo.vf_coef": {"uniform": [0.0, 1.0]},
    "ppo.net_arch": {"choice": [[64], [64, 64], [256, 256]]},
}


@dataclass(frozen=True)
class SweepConfig:
    """What ``perfmode sweep`` searches and how it scores and prunes trials."""

    space: dict[str, Any] | None = None
    """Dotted config keys and their distributions: {log_uniform: [lo, hi]}, {uniform: [lo,
    hi]}, {int: [lo, hi]} or {choice: [a, b, ...]}. null = the default space (RL Zoo's PPO
    space: batch_size, n_steps, gamma, learning_rate, ent_coef, clip_range, n_epochs,
    gae_lambda, max_grad_norm, vf_coef, net_arch); {} = sample nothing (with seeds: only the
    seed changes)."""
    seeds: int | list[int] | None = None
    """A seeds sweep: N (seeds 0 to N-1) or a list; the trials take them in turn with the
    config's hyperparameters (and the space only if one is written; without one, at most one
    trial per seed). null = no seeds sweep."""
    trials: int = 20
    """Trials of the study across every worker and machine (--trials overrides)."""
    timesteps_per_trial: int = 100_000
    """Training timesteps of each trial (--timesteps-per-trial overrides)."""
    reports: int = 10
    """Validation scores per trial (the pruner compares trials at each)."""
    validation: float = 0.1
    """The env.validation a trial uses when the config's env.validation is 0."""
    pruner: Literal["median", "none"] = "median"
    """median: stop a trial whose score is below the median of earlier trials at the same
    report (after startup_trials, and never in its first third of reports); none: never."""
    startup_trials: int = 5
    """Trials that finish before the pruner stops any."""
    sampler: Literal["tpe", "random"] = "tpe"
    """How the next trial's values are chosen: tpe (Optuna's default) or random."""

    def __post_init__(self) -> None:
        check(1 <= self.trials <= 100_000, "sweep.trials", self.trials, "from 1 to 100000")
        check(
            self.timesteps_per_trial >= 1,
            "sweep.timesteps_per_trial",
            self.timesteps_per_trial,
            ">= 1",
        )
        check(1 <= self.reports <= 1000, "sweep.reports", self.reports, "from 1 to 1000")
        check(
            0 < self.validation <= 0.5,
            "sweep.validation",
            self.validation,
            "a fraction above 0 and at most 0.5",
        )
        check(self.startup_trials >= 0, "sweep.startup_trials", self.startup_trials, ">= 0")
        seeds = self.seed_list
        check(
            seeds is None
            or (
                0 < len(seeds) <= 100_000
                and all(s >= 0 for s in seeds)
                and len(set(seeds)) == len(seeds)
            ),
            "sweep.seeds",
            self.seeds,
            "a count from 1, or a list of different seeds of 0 or more",
        )
        if self.space is not None:
            for key, spec in self.space.items():
                _check_spec(key, spec)

    @property
    def seed_list(self) -> list[int] | None:
        if self.seeds is None:
            return None
        if isinstance(self.seeds, int):
            return list(range(self.seeds))
        return list(self.seeds)

    def trial_env(self, env: EnvConfig) -> EnvConfig:
        """The env a trial trains with: ``env``'s validation part as written, else
        :attr:`validation` of the rows held out (a trial is scored on a validation part)."""
        return env if env.validation else env.replace(validation=self.validation)

    def effective_space(self) -> dict[str, dict[str, Any]]:
        """The space trials sample (the seeds of a seeds sweep are given, not sampled)."""
        if self.space is not None:
            return dict(self.space)
        return {} if self.seeds is not None else dict(DEFAULT_SPACE)


def for_command(
    sweep: SweepConfig,
    *,
    trials: int | None = None,
    timesteps: int | None = None,
    seeds: int | None = None,
) -> SweepConfig:
    """``sweep`` with the command line's --trials, --timesteps-per-trial and --seeds.

    A seeds-only sweep (nothing else sampled) runs one trial per seed: two trials of one seed
    would train the very same weights. So it runs at most as many trials as it has seeds,
    and a --trials above that is refused rather than spent on repeats.
    """
    changes: dict[str, Any] = {"timesteps_per_trial": timesteps, "seeds": seeds}
    if seeds is not None and sweep.space is None:
        changes["space"] = {}
    if trials is not None:
        changes["trials"] = trials
    elif seeds is not None and sweep.seeds is None:
        changes["trials"] = seeds
    out = dataclasses.replace(sweep, **{k: v for k, v in changes.items() if v is not None})
    seed_list = out.seed_list
    if seed_list is None or out.effective_space():
        return out
    if trials is not None and trials > len(seed_list):
        raise UsageError(
            f"--trials {trials} is more than the {len(seed_list)} seeds of this seeds sweep, "
            f"and a seed's second trial would train the same weights again: pass --trials "
            f"{len(seed_list)} or fewer, or more seeds (--seeds N)"
        )
    return dataclasses.replace(out, trials=min(out.trials, len(seed_list)))


def load_sweep_config(path: Path) -> SweepConfig:
    """The ``sweep:`` section of a YAML config file (defaults when the section is absent)."""
    doc = read_yaml_file(Path(path).expanduser())
    if doc.data is not None and not isinstance(doc.data, dict):
        raise UsageError(f"config file {path} must hold a mapping of sections (sweep:, ...)")
    return doc.build(lambda data: from_mapping(SweepConfig, (data or {}).get("sweep"), "sweep"))


def _where(key: str) -> str:
    return f"sweep.space {key}"


def _check_spec(key: Any, spec: Any) -> None:
    if not isinstance(key, str) or key not in SWEEPABLE:
        raise ConfigKeyError(
            "sweep.space",
            f"sweep.space: {describe(key, 40)} cannot be swept; keys: {', '.join(SWEEPABLE)}",
        )
    form = "{log_uniform: [lo, hi]}, {uniform: [lo, hi]}, {int: [lo, hi]} or {choice: [...]}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise ConfigKeyError("sweep.space", f"{_where(key)} is {describe(spec)}; write {form}")
    kind, arg = next(iter(spec.items()))
    if kind == "choice":
        ok = isinstance(arg, list) and len(arg) >= 1
        check(ok, _where(key), spec, "{choice: [a, b, ...]} with at least one value")
        return
    pair = isinstance(arg, list) and len(arg) == 2
    nums = pair and all(isinstance(v, int | float) and not isinstance(v, bool) for v in arg)
    check(nums and all(math.isfinite(v) for v in arg), _where(key), spec, f"{{{kind}: [lo, hi]}}")
    lo, hi = arg
    check(lo < hi, _where(key), spec, f"{{{kind}: [lo, hi]}} with lo below hi")
    if kind == "log_uniform":
        check(lo > 0, _where(key), spec, "a log_uniform range above 0")
    if kind == "int":
        check(
            all(float(v).is_integer() for v in arg),
            _where(key),
            spec,
            "an int range of whole numbers",
        )


def apply_values(config: Config, values: dict[str, Any]) -> Config:
    """``config`` with dotted ``values`` set, each converted and checked like a file's."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    changes = {
        section: from_mapping(
            type(getattr(config, section)), fields, section, getattr(config, section)
        )
        for section, fields in sections.items()
    }
    return dataclasses.replace(config, **changes)


def check_space_against(config: Config) -> None:
    """Every end of every range and every choice makes a config train accepts."""
    sweep = config.sweep
    plain = dataclasses.replace(config, sweep=SweepConfig(space={}))
    for key, spec in sweep.effective_space().items():
        kind, arg = next(iter(spec.items()))
        ends = arg if kind == "choice" else [int(v) for v in arg] if kind == "int" else arg
        for value in ends:
            try:
                apply_values(plain, {key: value})
            except ConfigKeyError as e:
                raise ConfigKeyError(
                    "sweep.space", f"sweep.space {key} {describe(value)} cannot train: {e.problem}"
                ) from None
    seeds = sweep.seed_list
    if seeds:
        apply_values(plain, {"training.seed": max(seeds)})


def encode_choice(value: Any) -> Any:
    """Optuna's categorical values are plain scalars: lists (net_arch) travel as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def decode_choice(value: Any, choices: list[Any]) -> Any:
    for c in choices:
        if encode_choice(c) == value:
            return c
    return value
