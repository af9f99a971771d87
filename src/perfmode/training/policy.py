"""SB3's MLP actor-critic with a lean forward pass: the same arithmetic, less Python around it.

For a small MLP the work per call is a few tiny matrix products; what costs is the code
around them. Each call of SB3's ``ActorCriticPolicy`` goes through about twenty
``nn.Module.__call__`` layers and builds a ``torch.distributions.Categorical`` (with
argument validation), which on one CPU core takes longer than the products themselves.

:class:`LeanMlpPolicy` keeps SB3's modules, parameters, initialisation and optimizer (so it
saves and loads like ``MlpPolicy``) and replaces the three calls PPO makes per step and per
minibatch (``forward``, ``evaluate_actions``, ``predict_values``) by the very torch
operations those calls end in, in the same order: ``F.linear`` and the activation for each
layer, then Categorical's own ``logsumexp`` normalisation, ``softmax``, ``multinomial``
sampling, ``gather`` and entropy. Same kernels, same inputs, same random draws: the results
are bit-for-bit SB3's, which ``tests/test_fast_path.py`` checks against plain ``PPO.learn``.

Anything it does not recognise (another action or observation space, image observations
SB3 scales, a custom layer or features extractor, a separate features extractor per
network) falls back to SB3's own code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

from perfmode.checkpoint.checks import Expected, expected_of

Layer = Callable[[torch.Tensor], torch.Tensor]
_ACTIVATIONS: dict[type[nn.Module], Layer] = {
    nn.Tanh: torch.tanh,
    nn.ReLU: F.relu,
}
_MIN_REAL = torch.finfo(torch.float32).min


def _lean_layers(seq: nn.Module) -> list[tuple[Any, ...]] | None:
    """``seq``'s layers as (kind, tensors) steps, or None when one is not a plain layer."""
    if not isinstance(seq, nn.Sequential):
        return None
    steps: list[tuple[Any, ...]] = []
    for layer in seq:
        if type(layer) is nn.Linear:
            steps.append(("linear", layer))
        elif type(layer) in _ACTIVATIONS:
            steps.append(("act", _ACTIVATIONS[type(layer)]))
        else:
            return None
    return steps


def _run(steps: list[tuple[Any, ...]], x: torch.Tensor) -> torch.Tensor:
    for kind, op in steps:
        # Parameters are read at each call: the optimizer updates them in place, and a
        # load_state_dict may replace them.
        x = F.linear(x, op.weight, op.bias) if kind == "linear" else op(x)
    return x


class LeanMlpPolicy(ActorCriticPolicy):
    """``MlpPolicy`` for a discrete action space, with the lean calls described above."""

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        plain = type(self.mlp_extractor) is MlpExtractor
        pi = _lean_layers(self.mlp_extractor.policy_net) if plain else None
        vf = _lean_layers(self.mlp_extractor.value_net) if plain else None
        lean = (
            pi is not None
            and type(self.action_net) is nn.Linear
            and type(self.value_net) is nn.Linear
            and vf is not None
            and isinstance(self.action_space, spaces.Discrete)
            and isinstance(self.observation_space, spaces.Box)
            # preprocess_obs() divides images by 255; _features() does not.
            and not (self.normalize_images and is_image_space(self.observation_space))
            and self.share_features_extractor
            # SB3's own extractor, not one that merely has a flatten layer (batch norm,
            # dropout: those must run, in the mode set_training_mode gave them).
            and type(self.features_extractor) is FlattenExtractor
        )
        self._pi_steps = pi if lean else None
        self._vf_steps = vf if lean else None

    # -- the three calls PPO makes ---------------------------------------------------

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._pi_steps is None or deterministic:
            return super().forward(obs, deterministic)
        latent_pi, latent_vf = self._latents(obs)
        values = F.linear(latent_vf, self.value_net.weight, self.value_net.bias)
        logits = self._normalised_logits(latent_pi)
        # Categorical.sample(): one multinomial draw per row of softmax(logits).
        actions = torch.multinomial(F.softmax(logits, dim=-1), 1, True).T.reshape(-1)
        return actions, values, self._log_prob(logits, actions)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self._pi_steps is None:
            return super().evaluate_actions(obs, actions)
        latent_pi, latent_vf = self._latents(obs)
        logits = self._normalised_logits(latent_pi)
        log_prob = self._log_prob(logits, actions)
        values = F.linear(latent_vf, self.value_net.weight, self.value_net.bias)
        # Categorical.entropy()
        p_log_p = torch.clamp(logits, min=_MIN_REAL) * F.softmax(logits, dim=-1)
        return values, log_prob, -p_log_p.sum(-1)

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        if self._vf_steps is None:
            return super().predict_values(obs)
        latent_vf = _run(self._vf_steps, self._features(obs))
        return F.linear(latent_vf, self.value_net.weight, self.value_net.bias)

    # -- the pieces, each the op SB3's code ends in -------------------------------------

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        # preprocess_obs() for a Box space is .float(); FlattenExtractor is flatten(1, -1).
        return obs.float().flatten(1, -1)

    def _latents(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self._features(obs)
        assert self._pi_steps is not None and self._vf_steps is not None
        return _run(self._pi_steps, features), _run(self._vf_steps, features)

    def _normalised_logits(self, latent_pi: torch.Tensor) -> torch.Tensor:
        # Categorical(logits=...) keeps logits - logsumexp(logits).
        logits = F.linear(latent_pi, self.action_net.weight, self.action_net.bias)
        return logits - logits.logsumexp(dim=-1, keepdim=True)

    @staticmethod
    def _log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # Categorical.log_prob(): gather the chosen action's normalised logit.
        return logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def expected_model(obs_space: Any, action_space: Any, policy_kwargs: dict[str, Any]) -> Expected:
    """The policy and optimizer a config builds, as a checkpoint's checks compare them.

    Built on the side before the run's model: torch's random stream is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        policy = LeanMlpPolicy(obs_space, action_space, lambda _: 0.0, **policy_kwargs)
    return expected_of(policy, tuple(obs_space.shape))
