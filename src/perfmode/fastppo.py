"""SB3's PPO update with the bookkeeping moved out of the minibatch loop.

``PPO.train`` reads top to bottom like pseudocode, and per minibatch it also turns four
losses into Python floats, computes an approximate KL divergence (used only when
``target_kl`` is set) and walks the module tree twice to list the parameters. For a small
MLP on one core that bookkeeping costs as much as the optimizer step. :class:`LeanPPO`
runs the very same loss, backward pass, gradient clipping and optimizer step, in the same
order, on the same minibatches (the rollout buffer's own shuffle), and turns the logged
statistics into floats once per update. The weights are bit-for-bit SB3's
(``tests/test_fast_path.py``).

Configurations it does not cover (a continuous action space, ``clip_range_vf``,
``target_kl``) run SB3's own ``train``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import explained_variance


class LeanPPO(PPO):
    def train(self) -> None:
        if (
            not isinstance(self.action_space, spaces.Discrete)
            or self.clip_range_vf is not None
            or self.target_kl is not None
        ):
            return super().train()
        policy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        params = list(policy.parameters())
        stats: list[torch.Tensor] = []

        for _ in range(self.n_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):
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
                entropy_loss = -torch.mean(entropy)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                policy.optimizer.step()

                with torch.no_grad():
                    clipped = torch.mean((torch.abs(ratio - 1) > clip_range).float())
                    stats.append(
                        torch.stack([policy_loss, value_loss, entropy_loss, clipped, loss])
                    )
            self._n_updates += 1

        pg, vf, ent, clip_fraction, last_loss = _means_and_last(stats)
        buffer = self.rollout_buffer
        self.logger.record("train/entropy_loss", ent)
        self.logger.record("train/policy_gradient_loss", pg)
        self.logger.record("train/value_loss", vf)
        self.logger.record("train/clip_fraction", clip_fraction)
        self.logger.record("train/loss", last_loss)
        self.logger.record(
            "train/explained_variance",
            explained_variance(buffer.values.flatten(), buffer.returns.flatten()),
        )
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)


def _means_and_last(stats: list[torch.Tensor]) -> tuple[float, float, float, float, float]:
    table = torch.stack(stats).cpu().numpy()
    pg, vf, ent, clip_fraction = (float(x) for x in np.mean(table[:, :4], axis=0))
    return pg, vf, ent, clip_fraction, float(table[-1, 4])
