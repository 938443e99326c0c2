"""The paper's pose discriminator and its least-squares (LSGAN) losses.

The discriminator sees body poses as 21 rotation matrices ``(B, 21, 3, 3)`` (SMPL joints 1..21,
column-vector convention). A shared per-joint 1x1 convolution (9 -> 32 -> 32, LeakyReLU 0.2) embeds
each joint; a separate linear critic per joint scores each embedding (21 outputs) and an MLP over
all 21 embeddings together scores the whole pose (1 output). This is the layout of HMR's pose
discriminator that Davydov et al. (CVPR 2022) reuse.

Loss weighting (our reading of the paper): the 21 per-joint least-squares terms are summed, so
together they weigh 21, and the whole-pose term weighs 1. Equivalently: 21 x (mean over joints)
+ 1 x (whole pose). Each term is a mean over the batch.

Optionally (``positions=True``, not in the paper) the whole-pose critic also sees the posed joint
positions of the neutral SMPL skeleton, pelvis-relative: the per-joint rotation features say
little about where a hand ends up after six chained rotations, and coverage and realism are
measured on joint positions.

Optionally (``pack > 1``, not in the paper) the whole-pose critic judges ``pack`` poses at once
(PacGAN, Lin et al. 2018): it sees the concatenated features of ``pack`` consecutive poses of a
batch that are all real or all generated and gives one score per group. A generator that covers
only some modes makes groups whose poses are too alike, which a packed critic can tell from
groups of independent real poses, while a one-pose critic cannot: it penalises mode dropping,
the usual reason a GAN's recall trails a VAE's. The per-joint critics still score single poses.
"""

from __future__ import annotations

import torch
from torch import nn

from advprior.body import forward_kinematics_rotmat

NUM_JOINTS = 21
#: Metres -> critic input units for the optional joint positions: a body is about 1.7 m tall,
#: so positions come in at about the magnitude of the rotation features (entries in [-1, 1]).
POSITION_SCALE = 2.0


class PoseDiscriminator(nn.Module):
    """Per-joint and whole-pose critics over rotation matrices.

    Args:
        num_joints: joints per pose (21 for the SMPL-H/SMPL-X body).
        channels: width of the shared per-joint embedding (32 in the paper).
        hidden_dim: width of the two hidden layers of the whole-pose MLP (1024 as in HMR).
        positions: also give the whole-pose MLP the 23 pelvis-relative joint positions of the
            neutral skeleton posed by the input (SMPL joints 1..23, zero global orientation).
        pack: poses the whole-pose MLP judges together (1: one score per pose, the paper).
    """

    def __init__(
        self,
        num_joints: int = NUM_JOINTS,
        channels: int = 32,
        hidden_dim: int = 1024,
        positions: bool = False,
        pack: int = 1,
    ) -> None:
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        if positions and num_joints != NUM_JOINTS:
            raise ValueError(f"positions=True needs the {NUM_JOINTS} SMPL body joints")
        self.num_joints = num_joints
        self.positions = positions
        self.pack = pack
        # A 1x1 conv over the joint axis = one Linear shared by all joints.
        self.embed = nn.Sequential(
            nn.Conv1d(9, channels, 1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 1),
            nn.LeakyReLU(0.2),
        )
        # One independent linear critic per joint, evaluated as a batched einsum.
        self.joint_weight = nn.Parameter(torch.empty(num_joints, channels))
        self.joint_bias = nn.Parameter(torch.zeros(num_joints))
        nn.init.uniform_(self.joint_weight, -(channels**-0.5), channels**-0.5)
        self.pose_critic = nn.Sequential(
            nn.Linear(pack * (num_joints * channels + (69 if positions else 0)), hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, rotmat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score poses.

        Args:
            rotmat: ``(B, J, 3, 3)`` rotation matrices; ``B`` a multiple of ``pack``, each
                ``pack`` consecutive poses one group.

        Returns:
            ``(joint_scores (B, J), pose_scores (B / pack, 1))``.
        """
        if rotmat.ndim != 4 or rotmat.shape[1:] != (self.num_joints, 3, 3):
            raise ValueError(
                f"rotmat must have shape (B, {self.num_joints}, 3, 3), got {tuple(rotmat.shape)}"
            )
        if not rotmat.is_floating_point():
            raise TypeError(f"rotmat must be a floating-point tensor, got {rotmat.dtype}")
        b = rotmat.shape[0]
        if b % self.pack:
            raise ValueError(f"batch size {b} is not a multiple of pack={self.pack}")
        feats = self.embed(rotmat.reshape(b, self.num_joints, 9).transpose(1, 2))  # (B, C, J)
        feats = feats.transpose(1, 2)  # (B, J, C)
        joint = torch.einsum("bjc,jc->bj", feats, self.joint_weight) + self.joint_bias
        whole = feats.reshape(b, -1)
        if self.positions:
            whole = torch.cat([whole, POSITION_SCALE * self._joint_positions(rotmat)], dim=-1)
        pose = self.pose_critic(whole.reshape(b // self.pack, -1))
        return joint, pose

    @staticmethod
    def _joint_positions(rotmat: torch.Tensor) -> torch.Tensor:
        """``(B, 69)``: SMPL joints 1..23 relative to the pelvis, metres, identity root."""
        eye = torch.eye(3, dtype=rotmat.dtype, device=rotmat.device)
        local = torch.cat([eye.expand(rotmat.shape[0], 1, 3, 3), rotmat], dim=1)
        joints = forward_kinematics_rotmat(local)
        return (joints[:, 1:] - joints[:, :1]).flatten(1)


def _ls_term(scores: torch.Tensor, label: float) -> torch.Tensor:
    return (scores - label).pow(2).mean(dim=0)


def lsgan_loss(
    scores: tuple[torch.Tensor, torch.Tensor], label: float, joint_weight: float = 1.0
) -> torch.Tensor:
    """Least-squares loss of one set of scores against a constant label.

    Returns ``joint_weight * sum_j mean_b (s_bj - label)^2 + mean_b (p_b - label)^2``: with the
    default weight of 1 per joint the 21 joint terms weigh 21 together, the whole pose 1.
    """
    joint, pose = scores
    return joint_weight * _ls_term(joint, label).sum() + _ls_term(pose, label).sum()


def discriminator_loss(
    real: tuple[torch.Tensor, torch.Tensor], fake: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """LSGAN discriminator loss: real scores pulled to 1, generated scores to 0."""
    return lsgan_loss(real, 1.0) + lsgan_loss(fake, 0.0)


def generator_loss(fake: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """LSGAN generator loss: generated scores pulled to 1 ("real")."""
    return lsgan_loss(fake, 1.0)
