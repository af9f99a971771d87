"""``perfmode evaluate``: run a policy over the test split and compare it with buy-and-hold.

The policy trades through the same :class:`TradingEnv` it trained in (costs, position cap,
drawdown limit), deterministically, from the first test row to the last. When the drawdown
limit is hit the position is closed (paying its cost) and stays flat to the end.

Buy-and-hold is the market benchmark: 1x the asset from the first test close to the last,
with no costs, so its total return is exactly ``last close / first close - 1``.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfmode.base.home import Home
from perfmode.base.smallfile import kind_of
from perfmode.checkpoint import folders as checkpoints
from perfmode.checkpoint.checks import Expected, max_weight_bytes, mlp_weight_bytes
from perfmode.checkpoint.files import read_json_object
from perfmode.checkpoint.folders import META_FILE, meta_net_arch, meta_sections
from perfmode.checkpoint.io import POLICY_FILE, DamagedCheckpoint, Normalization, read_normalization
from perfmode.checkpoint.legacy import MODEL_FILE, VECNORM_FILE
from perfmode.config.sections import from_mapping
from perfmode.env import EnvConfig, Market, TradingEnv, load_market
from perfmode.env.data import Series, is_daily, stamp
from perfmode.errors import PerfmodeError, UsageError
from perfmode.evaluation.plot import drawdown, plot_equity

log = logging.getLogger(__name__)

BASELINES = ("buy-and-hold", "flat")


@dataclass(frozen=True)
class Trace:
    """One strategy over the test split: ``equity`` has one point per test row (starting
    at 1), ``position`` one per step between rows."""

    equity: np.ndarray
    position: np.ndarray
    halted_at: int | None = None
    """Step at which the drawdown limit closed the position, if it did."""


def metrics(trace: Trace, periods_per_year: float) -> dict[str, Any]:
    equity, pos = trace.equity, trace.position
    step_ret = equity[1:] / equity[:-1] - 1.0
    sd = float(np.std(step_ret, ddof=1)) if len(step_ret) > 1 else 0.0
    # A constant equity has no risk to divide by: call its Sharpe ratio 0, not NaN.
    sharpe = float(np.mean(step_ret)) / sd * np.sqrt(periods_per_year) if sd > 1e-15 else 0.0
    return {
        "total_return": float(equity[-1] / equity[0] - 1.0),
        "sharpe": float(sharpe),
        "max_drawdown": float(np.max(drawdown(equity))),
        "trades": int(np.count_nonzero(np.diff(pos, prepend=0.0))),
        "exposure": float(np.mean(pos != 0.0)) if len(pos) else 0.0,
    }


def market_trace(series: Series, window: int) -> Trace:
    close = np.asarray(series.close[window:], dtype=np.float64)
    return Trace(equity=close / close[0], position=np.ones(len(close) - 1))


def run_policy(env: TradingEnv, act: Callable[[np.ndarray], int]) -> Trace:
    """Step ``env`` from its first row to the end of its data with ``act(obs) -> action``."""
    obs, _ = env.reset(seed=0, options={"start": env.cfg.window})
    steps = len(env.series) - 1 - env.cfg.window
    equity = np.empty(steps + 1)
    position = np.zeros(steps)
    equity[0] = env.equity
    for i in range(steps):
        obs, _, terminated, truncated, _ = env.step(act(obs))
        equity[i + 1], position[i] = env.equity, env.position
        if terminated and i + 1 < steps:
            # The risk limit closes the position at this close and keeps it closed.
            equity[i + 2 :] = env.equity * (1.0 - env.cfg.transaction_cost * abs(env.position))
            return Trace(equity, position, halted_at=i + 1)
        if truncated:
            break
    return Trace(equity, position)


def evaluate_baseline(
    name: str,
    cfg: EnvConfig | None = None,
    data: str | None = None,
    *,
    plot: Path | None = None,
    symbol: str | None = None,
    date_format: str | None = None,
) -> dict[str, Any]:
    """``name`` is "buy-and-hold" or "flat" (always out of the market: return exactly 0).
    ``symbol`` and ``date_format`` override the config's (how to read ``data``)."""
    if name not in BASELINES:
        raise UsageError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    _check_plot_path(plot)
    cfg = _reading(cfg or EnvConfig(), symbol, date_format)
    market = _load(cfg, data)
    if name == "flat":
        env = _test_env(market, cfg)
        trace = run_policy(env, lambda _obs: env.flat_action)
    else:
        trace = market_trace(market.test, cfg.window)
    return _report(name, trace, market, cfg, plot)


def evaluate_checkpoint(
    path: Path,
    cfg: EnvConfig | None = None,
    data: str | None = None,
    *,
    plot: Path | None = None,
    symbol: str | None = None,
    date_format: str | None = None,
    trust: bool = False,
) -> dict[str, Any]:
    """Evaluate a PPO ``.zip`` or a trainer checkpoint folder (whose meta.json env config
    wins over ``cfg``). Only weights and data are read: nothing in the file runs, unless
    ``trust`` lets an old-format folder or an unusual zip be unpickled."""
    _check_plot_path(plot)
    path = Path(path)
    meta_cfg = _checkpoint_files(path)
    if meta_cfg is not None:
        if cfg is not None and cfg != meta_cfg:
            log.warning("using the env config saved with the checkpoint; --config is ignored")
        cfg = meta_cfg
    cfg = _reading(cfg or EnvConfig(), symbol, date_format)
    _check_data_path(data if data is not None else cfg.data)
    market = _load(cfg, data)  # before _load_policy imports torch: a bad file fails at once
    env = _test_env(market, cfg)
    act = _load_policy(path, env, trust, _saved_net_arch(path))
    trace = run_policy(env, act)
    label = f"policy ({Path(path).name})"
    return _report(f"checkpoint {path}", trace, market, cfg, plot, label)


def resolve_checkpoint(home: Home, value: str) -> Path:
    """``--checkpoint`` as a path; "latest" is the newest valid checkpoint under the home."""
    # The checkpoint module owns the folder layout and what makes a checkpoint valid.
    return checkpoints.resolve_checkpoint(home, value)


def _reading(cfg: EnvConfig, symbol: str | None, date_format: str | None) -> EnvConfig:
    changes = {k: v for k, v in (("symbol", symbol), ("date_format", date_format)) if v}
    return cfg.replace(**changes) if changes else cfg


def _load(cfg: EnvConfig, data: str | None) -> Market:
    market = load_market(cfg, data)
    log.info("📈 %s", market.summary.one_line())
    return market


def _test_env(market: Market, cfg: EnvConfig) -> TradingEnv:
    return TradingEnv(market.test, cfg.replace(episode_length=None))


def _report(
    name: str, trace: Trace, market: Market, cfg: EnvConfig, plot: Path | None, label: str = ""
) -> dict[str, Any]:
    bench = market_trace(market.test, cfg.window)
    times = market.test.time[cfg.window :]
    halted = None if trace.halted_at is None else times[trace.halted_at]
    policy = {
        "name": name,
        **metrics(trace, market.periods_per_year),
        "halted_at": None if halted is None else stamp(halted, is_daily(times)),
    }
    result = {
        "policy": policy,
        "buy_and_hold": {"name": "buy-and-hold", **metrics(bench, market.periods_per_year)},
        "data": {**market.info, "steps": len(trace.position)},
    }
    if plot is not None:
        curves = {"buy-and-hold": bench.equity}
        if name != "buy-and-hold":
            curves = {label or name: trace.equity, **curves}
        info = market.info
        title = f"{info['source']}: test {info['test']['start']} .. {info['test']['end']}"
        plot_equity(plot, times, curves, title, halted=halted)
    return result


def _check_plot_path(plot: Path | None) -> None:
    # Fail before a possibly long evaluation, not after it.
    if plot is None:
        return
    if Path(plot).suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the plot is a PNG image; name it FILE.png")
    if not Path(plot).expanduser().parent.is_dir():
        raise UsageError(f"--plot {plot}: folder {Path(plot).parent} does not exist")


def _checkpoint_files(path: Path) -> EnvConfig | None:
    """Check ``path`` exists and has a model; the env config its meta.json saved, if any."""
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist")
    if not path.is_dir():
        if not zipfile.is_zipfile(path):
            raise UsageError(
                f"{path} is not a Stable-Baselines3 model (that is a .zip file); pass a "
                "checkpoint folder, a model .zip, or 'latest'"
            )
        return None
    if not (path / POLICY_FILE).exists() and not (path / MODEL_FILE).is_file():
        raise UsageError(f"checkpoint folder {path} has no {POLICY_FILE} (nor an old {MODEL_FILE})")
    return _meta_env_config(path)


def _check_data_path(source: str) -> None:
    """A data path read from a checkpoint's meta.json can name anything: a FIFO would block."""
    if source == "synthetic":
        return
    try:
        mode = os.stat(Path(source).expanduser()).st_mode
    except OSError:
        return  # missing or unreadable: load_market says so
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UsageError(f"data file {source} is {kind_of(mode)}, not a regular file")


def _read_meta(path: Path) -> dict | None:
    """meta.json of a checkpoint folder (bounded, regular file, not nested deep), if any."""
    meta = path / META_FILE
    if not path.is_dir() or not (meta.exists() or meta.is_symlink()):
        return None
    try:
        doc = read_json_object(meta)
        if isinstance(doc.get("config"), dict):
            meta_sections(doc)
            meta_net_arch(doc)
    except DamagedCheckpoint as e:
        message = str(e) if str(e).startswith(str(meta)) else f"{meta}: {e}"
        raise PerfmodeError(message) from None
    return doc


def _saved_net_arch(path: Path) -> list[int] | None:
    doc = _read_meta(path)
    return meta_net_arch(doc) if doc and isinstance(doc.get("config"), dict) else None


def _meta_env_config(path: Path) -> EnvConfig | None:
    meta = path / META_FILE
    doc = _read_meta(path)
    config = doc.get("config") if isinstance(doc, dict) else None
    section = config.get("env") if isinstance(config, dict) else None
    if section is None:
        return None
    try:
        return from_mapping(EnvConfig, section, "env")
    except UsageError as e:
        raise UsageError(f"{meta}: {e}") from None


def _expected(env: TradingEnv, net_arch: list[int] | None) -> Expected:
    """What the policy for ``env`` may be: meta.json's net_arch, else the config's limits."""
    shape = tuple(env.observation_space.shape)
    n_obs, n_actions = math.prod(shape), int(env.action_space.n)
    if net_arch:
        weight_bytes = mlp_weight_bytes(n_obs, net_arch, n_actions)
    else:
        weight_bytes = max_weight_bytes(n_obs, n_actions)
    return Expected(None, weight_bytes, shape)


def _load_policy(
    path: Path, env: TradingEnv, trust: bool, net_arch: list[int] | None = None
) -> Callable[[np.ndarray], int]:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from perfmode.checkpoint.state import normalizer_for

    policy, norm = _read_policy(path, trust, _expected(env, net_arch))
    want, got = env.observation_space, policy.observation_space
    if getattr(got, "shape", None) != want.shape:
        raise PerfmodeError(
            f"{path}: the model expects observations of shape {getattr(got, 'shape', got)}, "
            f"but env.window={env.cfg.window} gives {want.shape}; evaluate with the config it "
            "was trained with (--config, or a checkpoint folder with meta.json)"
        )
    if getattr(policy.action_space, "n", None) != env.action_space.n:
        raise PerfmodeError(
            f"{path}: the model chooses from {policy.action_space}, but "
            f"env.position_levels={env.cfg.position_levels} gives {env.action_space}"
        )
    normalize: Callable[[np.ndarray], np.ndarray] = lambda obs: obs  # noqa: E731
    if norm is not None:
        # Observations normalised with the statistics frozen as they were in training.
        try:
            normalize = normalizer_for(norm, DummyVecEnv([lambda: env])).normalize_obs
        except PerfmodeError as e:
            raise PerfmodeError(f"{path}: {e}") from None

    def act(obs: np.ndarray) -> int:
        action, _ = policy.predict(normalize(obs), deterministic=True)
        return int(action)

    return act


def _read_policy(path: Path, trust: bool, expect: Expected) -> tuple[Any, Normalization | None]:
    """The policy (anything with ``predict``) and the normalisation statistics at ``path``."""
    from perfmode.checkpoint.policy_file import build_policy, folder_weights, zip_weights

    if path.is_dir() and (path / POLICY_FILE).exists():
        policy = _built(path, lambda: build_policy(folder_weights(path, expect)))
        try:
            return policy, read_normalization(path, expect)
        except DamagedCheckpoint as e:
            raise PerfmodeError(str(e)) from None
    model = path / MODEL_FILE if path.is_dir() else path
    vecnorm = path / VECNORM_FILE if path.is_dir() else None
    if trust:
        log.warning("⚠️  --trust-checkpoint: unpickling %s as Stable-Baselines3 saved it", path)
        return _sb3_load(model), _sb3_normalization(vecnorm)
    if vecnorm is not None and vecnorm.exists():
        raise PerfmodeError(
            f"{vecnorm} is a pickle (a checkpoint from an older perfmode), which runs code "
            "when loaded; if you made it yourself, add --trust-checkpoint"
        )
    return _built(model, lambda: build_policy(*zip_weights(model, expect))), None


def _built(path: Path, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except DamagedCheckpoint as e:  # trusting the file would not mend it
        message = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
        raise PerfmodeError(message) from None
    except PerfmodeError as e:
        raise PerfmodeError(
            f"{path}: {e}; if you trust the file, `--trust-checkpoint` loads it the "
            "Stable-Baselines3 way (unpickling it)"
        ) from None


def _sb3_load(model_path: Path) -> Any:
    from stable_baselines3 import PPO

    try:
        return PPO.load(model_path, device="cpu")
    # SB3, zipfile and torch raise many types for a bad file; all mean "not a model".
    except Exception as e:
        reason = str(e).removeprefix("Error: ") or type(e).__name__
        raise PerfmodeError(
            f"{model_path}: cannot load it as a Stable-Baselines3 PPO model ({reason})"
        ) from None


def _sb3_normalization(vecnorm: Path | None) -> Normalization | None:
    if vecnorm is None or not vecnorm.exists():
        return None
    from perfmode.checkpoint.legacy import read_vecnormalize

    try:
        return read_vecnormalize(vecnorm)
    except DamagedCheckpoint as e:
        raise PerfmodeError(str(e)) from None
