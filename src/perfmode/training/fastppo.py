"""SB3's PPO with the bookkeeping moved out of its inner loops.

The rollout: per env step, SB3's ``collect_rollouts`` runs the policy under ``no_grad``,
checks every env for a timeout and copies each value into the rollout buffer twice.
:meth:`LeanPPO.collect_rollouts` runs the same policy call under ``inference_mode`` (same
arithmetic, less autograd bookkeeping), looks only at the envs that are done, and writes the
buffer's rows directly; the callbacks are called as SB3 calls them.

The update: ``PPO.train`` reads top to bottom like pseudocode, and per minibatch it also
turns five statistics into Python floats (four losses and an approximate KL divergence),
walks the module tree twice to list the parameters, and copies the minibatch out of numpy
arrays. Around the optimizer step, torch adds a profiler range, two
dynamo graph breaks, hook dispatch and a walk over the optimizer state; ``zero_grad`` and
``clip_grad_norm_`` add their own. For a small MLP on one core that bookkeeping costs as
much as the arithmetic. :class:`LeanPPO` runs the very same loss, backward pass, gradient
clipping (the same foreach norm and scaling) and Adam update (torch's own ``adam()``
with the arguments ``Adam.step`` passes), in the same order, on the same minibatches (the
same shuffle, indexed from tensors made once per update), and turns the logged statistics
into floats once per update. The weights are bit-for-bit SB3's
(``tests/test_fast_path.py``).

Configurations it does not cover (a continuous action space, ``clip_range_vf``,
``target_kl``, a dict observation space, state-dependent exploration, another rollout
buffer) run SB3's own ``collect_rollouts`` and ``train``; an optimizer it does not cover
(another class, several parameter groups, amsgrad, fused or capturable Adam, step
pre-hooks) gets its own ``step()``. Where a lean method runs, callbacks see the locals SB3's
rollout gives them and the update logs what SB3's logs. SB3's own PPO and VecNormalize tests
pass with these classes in place of its own (``benchmarks/sb3_suite.py`` runs them);
``tests/test_fast_path_fallbacks.py`` holds the cases they once failed and each family the
lean methods leave to SB3's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.optim.optimizer as _optim
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.utils import explained_variance
from torch.optim.adam import adam

from perfmode.training.policy import LeanMlpPolicy


class LeanPPO(PPO):
    """SB3's PPO with the rollout loop and the update described above."""

    def _maybe_recommend_cpu(self, mlp_class_name: str = "ActorCriticPolicy") -> None:
        # SB3 knows its MlpPolicy by class name; LeanMlpPolicy is that policy too. It names
        # the algorithm by class name as well: this one is PPO, and its warning says so.
        if issubclass(self.policy_class, LeanMlpPolicy):
            mlp_class_name = self.policy_class.__name__
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            super()._maybe_recommend_cpu(mlp_class_name)
        for w in caught:
            text = str(w.message).replace(f"run {type(self).__name__} on", "run PPO on", 1)
            warnings.warn(text, w.category, stacklevel=2)

    def collect_rollouts(
        self, env: Any, callback: Any, rollout_buffer: Any, n_rollout_steps: int
    ) -> bool:
        """``OnPolicyAlgorithm.collect_rollouts``, step for step, for a discrete action space
        and a plain rollout buffer (anything else runs SB3's own)."""
        if (
            not isinstance(self.action_space, spaces.Discrete)
            or self.use_sde
            or type(rollout_buffer) is not RolloutBuffer
            or not isinstance(self._last_obs, np.ndarray)
        ):
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        policy, buf = self.policy, rollout_buffer
        policy.set_training_mode(False)
        n_steps = 0
        buf.reset()
        callback.on_rollout_start()

        # RolloutBuffer.add's reshapes: a discrete observation space gives (n_envs,) arrays.
        obs_shape = (env.num_envs, *buf.obs_shape)
        while n_steps < n_rollout_steps:
            # inference_mode, not SB3's no_grad: the same arithmetic, less autograd
            # bookkeeping per op. The names are SB3's, so callbacks see the locals they know.
            with torch.inference_mode():
                obs_tensor = torch.as_tensor(self._last_obs, device=self.device)
                actions, values, log_probs = policy(obs_tensor)
                values_np = values.cpu().numpy().flatten()
                log_probs_np = log_probs.cpu().numpy()
            actions = actions.cpu().numpy()
            clipped_actions = actions  # a discrete action space is never clipped
            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            actions = actions.reshape(-1, 1)

            # A time limit is no failure: bootstrap the cut episode with the value of its
            # last observation (SB3's handling of timeouts; only done envs can have one).
            for idx in np.flatnonzero(dones):
                info = infos[idx]
                if info.get("terminal_observation") is not None and info.get(
                    "TimeLimit.truncated", False
                ):
                    terminal_obs = policy.obs_to_tensor(info["terminal_observation"])[0]
                    with torch.no_grad():
                        terminal_value = policy.predict_values(terminal_obs)[0]
                    rewards[idx] += self.gamma * terminal_value

            # RolloutBuffer.add without its defensive copies: assigning a row copies anyway.
            pos = buf.pos
            buf.observations[pos] = self._last_obs.reshape(obs_shape)
            buf.actions[pos] = actions
            buf.rewards[pos] = rewards
            buf.episode_starts[pos] = self._last_episode_starts
            buf.values[pos] = values_np
            buf.log_probs[pos] = log_probs_np
            buf.pos += 1
            buf.full = buf.pos == buf.buffer_size
            self._last_obs = new_obs
            self._last_episode_starts = dones

        with torch.no_grad():
            values = policy.predict_values(torch.as_tensor(new_obs, device=self.device))
        buf.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def train(self) -> None:
        if (
            not isinstance(self.action_space, spaces.Discrete)
            or self.clip_range_vf is not None
            or self.target_kl is not None
            or type(self.rollout_buffer) is not RolloutBuffer  # a dict observation space
        ):
            return super().train()
        policy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        params = list(policy.parameters())
        # zero_grad(set_to_none=True) clears the optimizer's parameters, not the policy's.
        trained = [p for group in policy.optimizer.param_groups for p in group["params"]]
        stats: list[torch.Tensor] = []
        rollout = _rollout_tensors(self.rollout_buffer)

        last_epoch = 0  # SB3 logs the approximate KL of the last epoch only
        for _ in range(self.n_epochs):
            last_epoch = len(stats)
            for batch in _minibatches(rollout, self.batch_size):
                actions = batch.actions.long().flatten()
                values, log_prob, entropy = policy.evaluate_actions(batch.observations, actions)
                values = values.flatten()
                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # The clipped surrogate objective, value loss and entropy bonus, as in SB3.
                ratio = torch.exp(log_prob - batch.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean()
                value_loss = F.mse_loss(batch.returns, values)
                # No entropy (a custom distribution): SB3 approximates it by -log_prob.
                entropy_loss = -torch.mean(-log_prob if entropy is None else entropy)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                for p in trained:  # optimizer.zero_grad(), whose default is set_to_none
                    p.grad = None
                loss.backward()
                _clip_grad_norm(params, self.max_grad_norm)
                _optimizer_step(policy.optimizer)

                with torch.no_grad():
                    clipped = torch.mean((torch.abs(ratio - 1) > clip_range).float())
                    log_ratio = log_prob - batch.old_log_prob  # SB3's approx_kl, logged
                    approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio)
                    stats.append(
                        torch.stack(
                            [policy_loss, value_loss, entropy_loss, clipped, approx_kl, loss]
                        )
                    )
            self._n_updates += 1

        pg, vf, ent, clip_fraction, approx_kl_mean, last_loss = _means_and_last(stats, last_epoch)
        buffer = self.rollout_buffer
        self.logger.record("train/entropy_loss", ent)
        self.logger.record("train/policy_gradient_loss", pg)
        self.logger.record("train/value_loss", vf)
        self.logger.record("train/approx_kl", approx_kl_mean)
        self.logger.record("train/clip_fraction", clip_fraction)
        self.logger.record("train/loss", last_loss)
        self.logger.record(
            "train/explained_variance",
            explained_variance(buffer.values.flatten(), buffer.returns.flatten()),
        )
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)


def _means_and_last(
    stats: list[torch.Tensor], last_epoch: int
) -> tuple[float, float, float, float, float, float]:
    table = torch.stack(stats).cpu().numpy()
    pg, vf, ent, clip_fraction = (float(x) for x in np.mean(table[:, :4], axis=0))
    approx_kl = float(np.mean(table[last_epoch:, 4]))
    return pg, vf, ent, clip_fraction, approx_kl, float(table[-1, 5])


def _rollout_tensors(buffer: RolloutBuffer) -> list[torch.Tensor]:
    """The rollout as the tensors ``RolloutBuffer.get`` copies minibatches from, made once
    per update (flattened as ``get`` flattens them)."""
    if not buffer.generator_ready:
        for name in ("observations", "actions", "values", "log_probs", "advantages", "returns"):
            buffer.__dict__[name] = buffer.swap_and_flatten(buffer.__dict__[name])
        buffer.generator_ready = True
    device = buffer.device
    return [
        torch.as_tensor(buffer.observations, device=device),
        torch.as_tensor(buffer.actions.astype(np.float32, copy=False), device=device),
        *(
            torch.as_tensor(a.reshape(-1), device=device)
            for a in (buffer.values, buffer.log_probs, buffer.advantages, buffer.returns)
        ),
    ]


def _minibatches(tensors: list[torch.Tensor], batch_size: int) -> Iterator[RolloutBufferSamples]:
    """One epoch of ``RolloutBuffer.get(batch_size)``: the same shuffle (one
    ``np.random.permutation`` per epoch), the same minibatches."""
    n = len(tensors[0])
    order = torch.from_numpy(np.random.permutation(n)).to(tensors[0].device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield RolloutBufferSamples(*(t[idx] for t in tensors))


@torch.no_grad()
def _clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_(params, max_norm)`` as torch runs it for tensors of one device and
    dtype (its foreach path; on the CPU that is the per-tensor norm), without its grouping."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads, 2.0)
    total_norm = torch.linalg.vector_norm(torch.stack(norms), 2.0)
    clip_coef = max_norm / (total_norm + 1e-6)
    torch._foreach_mul_(grads, torch.clamp(clip_coef, max=1.0))


def _optimizer_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()``; for a plain Adam whose state exists, the ``adam()`` call Adam.step
    makes, with the same arguments, then the step post-hooks (the governor's tick)."""
    group = opt.param_groups[0]
    params = [p for p in group["params"] if p.grad is not None]
    states = [opt.state.get(p) for p in params]
    if (
        type(opt) is not torch.optim.Adam
        or len(opt.param_groups) != 1
        or opt._optimizer_step_pre_hooks
        or _optim._global_optimizer_pre_hooks
        or any(group.get(k, True) for k in ("amsgrad", "fused", "capturable", "differentiable"))
        or "decoupled_weight_decay" not in group  # a torch whose adam() takes other arguments
        or any(not s or "step" not in s for s in states)  # the first step creates the state
        or any(torch.is_complex(p) for p in params)
    ):
        opt.step()
        return
    beta1, beta2 = group["betas"]
    with torch.no_grad():
        adam(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            amsgrad=False,
            has_complex=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            foreach=group["foreach"],
            capturable=False,
            differentiable=False,
            fused=group["fused"],
            grad_scale=getattr(opt, "grad_scale", None),
            found_inf=getattr(opt, "found_inf", None),
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
    for hook in chain(
        opt._optimizer_step_post_hooks.values(), _optim._global_optimizer_post_hooks.values()
    ):
        hook(opt, (opt,), {})
