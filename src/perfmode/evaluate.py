"""``perfmode evaluate``: run a policy over the test split and compare it with buy-and-hold.

The policy trades through the same :class:`TradingEnv` it trained in (costs, position cap,
drawdown limit), deterministically, from the first test row to the last. When the drawdown
limit is hit the position is closed (paying its cost) and stays flat to the end.

Buy-and-hold is the market benchmark: 1x the asset from the first test close to the last,
with no costs, so its total return is exactly ``last close / first close - 1``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfmode import checkpoints
from perfmode.checkpoints import META_FILE, MODEL_FILE, VECNORM_FILE
from perfmode.configutil import from_mapping
from perfmode.env import EnvConfig, Market, TradingEnv, load_market
from perfmode.env.data import Series, is_daily, stamp
from perfmode.errors import PerfmodeError, UsageError
from perfmode.home import Home
from perfmode.plot import drawdown, plot_equity

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
) -> dict[str, Any]:
    """Evaluate a PPO ``.zip``, or a trainer checkpoint folder (model.zip, optionally
    vecnormalize.pkl and meta.json, whose env config wins over ``cfg``)."""
    _check_plot_path(plot)
    model_path, vecnorm_path, meta_cfg = _checkpoint_files(Path(path))
    if meta_cfg is not None:
        if cfg is not None and cfg != meta_cfg:
            log.warning("using the env config saved with the checkpoint; --config is ignored")
        cfg = meta_cfg
    cfg = _reading(cfg or EnvConfig(), symbol, date_format)
    market = _load(cfg, data)  # before _load_policy imports torch: a bad file fails at once
    env = _test_env(market, cfg)
    act = _load_policy(model_path, vecnorm_path, env)
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
    if plot is not None and not Path(plot).expanduser().parent.is_dir():
        raise UsageError(f"--plot {plot}: folder {Path(plot).parent} does not exist")


def _checkpoint_files(path: Path) -> tuple[Path, Path | None, EnvConfig | None]:
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist")
    if not path.is_dir():
        return path, None, None
    model = path / MODEL_FILE
    if not model.is_file():
        raise UsageError(f"checkpoint folder {path} has no {MODEL_FILE}")
    vecnorm = path / VECNORM_FILE
    meta = path / META_FILE
    cfg = _meta_env_config(meta) if meta.is_file() else None
    return model, vecnorm if vecnorm.is_file() else None, cfg


def _meta_env_config(meta: Path) -> EnvConfig | None:
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PerfmodeError(f"{meta}: cannot read it as JSON ({e})") from None
    section = (doc.get("config") or {}).get("env") if isinstance(doc, dict) else None
    if section is None:
        return None
    try:
        return from_mapping(EnvConfig, section, "env")
    except UsageError as e:
        raise UsageError(f"{meta}: {e}") from None


def _load_policy(
    model_path: Path, vecnorm_path: Path | None, env: TradingEnv
) -> Callable[[np.ndarray], int]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    try:
        model = PPO.load(model_path, device="cpu")
    # SB3, zipfile and torch raise many types for a bad file; all mean "not a model".
    except Exception as e:
        raise PerfmodeError(
            f"{model_path}: cannot load it as a Stable-Baselines3 PPO model ({type(e).__name__}: {e})"
        ) from None
    want, got = env.observation_space, model.observation_space
    if getattr(got, "shape", None) != want.shape:
        raise PerfmodeError(
            f"{model_path}: the model expects observations of shape {getattr(got, 'shape', got)}, "
            f"but env.window={env.cfg.window} gives {want.shape}; evaluate with the config it "
            "was trained with (--config, or a checkpoint folder with meta.json)"
        )
    if model.action_space != env.action_space:
        raise PerfmodeError(
            f"{model_path}: the model chooses from {model.action_space}, but "
            f"env.position_levels={env.cfg.position_levels} gives {env.action_space}"
        )
    normalize: Callable[[np.ndarray], np.ndarray] = lambda obs: obs  # noqa: E731
    if vecnorm_path is not None:
        try:
            vn = VecNormalize.load(str(vecnorm_path), DummyVecEnv([lambda: env]))
        # Unpickling errors come in every type.
        except Exception as e:
            raise PerfmodeError(
                f"{vecnorm_path}: cannot load it ({type(e).__name__}: {e})"
            ) from None
        # Normalise observations with the statistics frozen as they were in training.
        vn.training, vn.norm_reward = False, False
        normalize = vn.normalize_obs

    def act(obs: np.ndarray) -> int:
        action, _ = model.predict(normalize(obs), deterministic=True)
        return int(action)

    return act
