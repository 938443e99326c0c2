"""advprior.compat and the stand-in body against call patterns of further public projects.

``tests/test_compat_callpatterns.py`` re-enacts SMPLify-X, human_body_prior's own examples,
PLACE, EasyMocap and the GMM readers. This file adds the patterns of video and regression
pipelines (HuMoR's third stage, SLAHMR's scene model, LEMO's clip matrix, 4D-Humans / ProHMR's
``SMPLLayer``, SPIN / EFT / mmhuman3d's SMPLify with ``MaxMixturePrior``), each written here from
a description of what the project does (never its code), with only the import swapped for
``advprior.compat`` and the licensed SMPL folder swapped for ``advprior.body.standin_folder()``.
The fits are tiny (a few optimiser steps on a few frames): what is checked is that the pattern
runs, gives the shapes and dtypes the project relies on, stays finite and moves its loss.
"""

from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch
from torch import nn

from advprior.body import standin_folder
from advprior.compat import load_model, load_vposer
from advprior.hub import load_pretrained
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

SEED = 11


def _gen(seed: int = SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def smpl_dir() -> Path:
    """The folder SPIN, 4D-Humans, ProHMR, WHAM and mmhuman3d name ``SMPL_MODEL_DIR`` /
    ``model_path``: the one holding ``SMPL_NEUTRAL.pkl`` itself (smplx's ``SMPL`` and
    ``SMPLLayer`` look there; ``smplx.create`` takes the folder above)."""
    return standin_folder() / "smpl"


def _smpl(smpl_dir: Path, batch_size: int) -> smplx.SMPL:
    # SPIN / EFT / WHAM / GLAMR: ``SMPL(SMPL_MODEL_DIR, batch_size=B, create_transl=False)``
    return smplx.SMPL(str(smpl_dir), batch_size=batch_size, create_transl=False)


def _with_hands(body63: torch.Tensor) -> torch.Tensor:
    """SMPL's ``body_pose (B, 69)``: VPoser's 21 joints and two resting hands."""
    zeros = torch.zeros(body63.shape[0], 6, dtype=body63.dtype, device=body63.device)
    return torch.cat([body63, zeros], dim=1)


# --- HuMoR (davrempe/humor humor/fitting/motion_optimizer.py) ---------------------------------


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_humor_stages_two_and_three(smpl_dir: Path, alias: str) -> None:
    """HuMoR: ``latent_pose = zeros((B, T, pose_prior.latentD))``, ``requires_grad`` switched on
    and off by attribute between stages; ``latent2pose`` decodes ``reshape(-1, D)`` as ``matrot``
    and turns ``reshape(B * T * 21, 3, 3)`` into ``(B, T, 63)``; stage 3 keeps only
    ``latent_pose[:, :1].detach()``, decodes it to ``(B, 1, 63)``, ``expand``s it to the
    sequence for the body model, rolls out the rest of the motion and re-encodes the whole
    rolled-out sequence with ``pose2latent`` (``encode(reshape(-1, 63)).mean.reshape(B, T, D)``)
    inside every L-BFGS closure, putting ``|z|^2`` on those latents. The body is the stand-in
    through smplx (HuMoR's own body model is smplx underneath)."""
    pose_prior, _ = load_vposer(alias)
    pose_prior = pose_prior.to("cpu")
    pose_prior.eval()
    B, T = 1, 3  # noqa: N806
    D = pose_prior.latentD  # noqa: N806
    body = _smpl(smpl_dir, B * T)

    def latent2pose(latent: torch.Tensor) -> torch.Tensor:
        b, t, _ = latent.shape
        mats = pose_prior.decode(latent.reshape(-1, D), output_type="matrot")
        return rotmat_to_axis_angle(mats.reshape(b * t * 21, 3, 3)).reshape(b, t, 63)

    def pose2latent(body_pose: torch.Tensor) -> torch.Tensor:
        b, t, _ = body_pose.shape
        return pose_prior.encode(body_pose.reshape(-1, 63)).mean.reshape(b, t, D)

    def joints(body_pose: torch.Tensor) -> torch.Tensor:
        flat = _with_hands(body_pose.reshape(B * T, 63))
        return body(body_pose=flat).joints[:, :24].reshape(B, T, 24, 3)

    target_pose = pose_prior.sample_poses(B * T, seed=3).reshape(B, T, 63)
    with torch.no_grad():
        target = joints(target_pose)

    latent_pose = torch.zeros((B, T, D))
    latent_pose.requires_grad = False  # stage 1 leaves the pose alone
    with torch.no_grad():
        start = float((joints(latent2pose(latent_pose)) - target).pow(2).sum())

    # stage 2: the full latent sequence
    latent_pose.requires_grad = True
    optim = torch.optim.LBFGS([latent_pose], max_iter=10, line_search_fn="strong_wolfe")

    def closure2() -> torch.Tensor:
        optim.zero_grad()
        loss = (joints(latent2pose(latent_pose)) - target).pow(2).sum()
        loss = loss + 1e-4 * latent_pose.pow(2).sum()
        loss.backward()
        return loss

    for _ in range(2):
        optim.step(closure2)
    with torch.no_grad():
        stage2 = float((joints(latent2pose(latent_pose)) - target).pow(2).sum())
    assert stage2 < 0.5 * start

    # stage 3: the first frame's latent plus a motion that rolls the rest out from it
    latent0 = latent_pose[:, :1].detach()
    latent0.requires_grad = True
    motion = torch.zeros(B, T - 1, 63, requires_grad=True)
    # every closure inverts the sequence with a GAN (docs/compat.md: about a second on one
    # CPU thread), so the stage is kept to one short step
    optim3 = torch.optim.LBFGS([latent0, motion], max_iter=3, line_search_fn="strong_wolfe")
    seen: list[torch.Tensor] = []

    def closure3() -> torch.Tensor:
        optim3.zero_grad()
        first = latent2pose(latent0)  # (B, 1, 63)
        rollout = torch.cat([first, first.expand(B, T - 1, 63) + motion], dim=1)
        relatent = pose2latent(rollout)
        seen.append(relatent)
        loss = (joints(rollout) - target).pow(2).sum() + 1e-4 * relatent.pow(2).sum()
        loss.backward()
        return loss

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = optim3.step(closure3)
    assert torch.isfinite(loss) and torch.isfinite(latent0).all() and torch.isfinite(motion).all()
    assert all(z.shape == (B, T, D) and torch.isfinite(z).all() for z in seen)
    no_grad = [w for w in caught if "no gradient to the pose" in str(w.message)]
    if alias == "vae":
        # an encoder network: the latent prior reaches the motion, as with VPoser
        assert seen[-1].requires_grad and not no_grad
    else:
        # an inversion: the re-encoded latents are constants, said once (docs/compat.md)
        assert not seen[-1].requires_grad and len(no_grad) == 1
    # get_optim_result: the kept first frame decodes to what the rollout started from
    assert latent2pose(latent0).shape == (B, 1, 63)


# --- SLAHMR (vye16/slahmr slahmr/optim/base_scene.py) ----------------------------------------


class _SceneModel(nn.Module):
    """SLAHMR's ``BaseSceneModel`` in outline: an ``nn.Module`` holding the pose prior as a
    submodule and the per-track latents as parameters."""

    def __init__(self, pose_prior: nn.Module, batch_size: int, seq_len: int) -> None:
        super().__init__()
        self.pose_prior = pose_prior
        self.latent_pose_dim = pose_prior.latentD
        self.latent_pose = nn.Parameter(torch.zeros(batch_size, seq_len, self.latent_pose_dim))

    def pose2latent(self, body_pose: torch.Tensor) -> torch.Tensor:
        b, t = body_pose.shape[:2]
        q = self.pose_prior.encode(body_pose.reshape((-1, 63)))
        return q.mean.reshape((b, t, self.pose_prior.latentD))

    def latent2pose(self, latent: torch.Tensor) -> torch.Tensor:
        b, t, _ = latent.shape
        mats = self.pose_prior.decode(latent.reshape((-1, self.pose_prior.latentD)), "matrot")
        return rotmat_to_axis_angle(mats.reshape((b * t * 21, 3, 3))).reshape((b, t, 63))


def test_slahmr_scene_model_init_save_and_reload(tmp_path: Path) -> None:
    """SLAHMR: the tracker's per-frame SMPL poses ``(B, T, 23, 3)`` are cut to
    ``[:, :, :21, :]`` and encoded as a 4-d tensor (``pose2latent`` reshapes to ``(-1, 63)``);
    the latents become the scene model's parameters; the pose prior is a submodule, so
    ``scene.to(device)``, ``scene.train()``, ``scene.state_dict()`` and a later
    ``load_state_dict(torch.load(path, map_location=...))`` all go through it."""
    pose_prior, _ = load_vposer("gan-s")
    B, T = 2, 3  # noqa: N806
    scene = _SceneModel(pose_prior.to("cpu"), B, T).to("cpu")
    tracked = pose_prior.sample_poses(B * T, seed=5).reshape(B, T, 21, 3)
    tracked = torch.cat([tracked, torch.zeros(B, T, 2, 3)], dim=2)  # the tracker's 23 joints
    init = scene.pose2latent(tracked[:, :, :21, :])
    assert init.shape == (B, T, 32) and not init.requires_grad
    with torch.no_grad():
        scene.latent_pose.copy_(init)
    decoded = scene.latent2pose(scene.latent_pose)
    # the inversion of the prior's own samples lands back on them (radians, as test_compat)
    assert (decoded - tracked[:, :, :21].reshape(B, T, 63)).abs().mean() < 0.05

    scene.train()  # an optimisation loop's habit; the prior keeps decoding in eval mode
    assert not scene.pose_prior.prior.training
    trainable = [n for n, p in scene.named_parameters() if p.requires_grad]
    assert trainable == ["latent_pose"]  # the prior stays frozen inside the scene

    torch.save(scene.state_dict(), tmp_path / "scene.pth")
    fresh = _SceneModel(load_vposer("gan-s")[0], B, T)
    state = torch.load(tmp_path / "scene.pth", map_location="cpu", weights_only=True)
    fresh.load_state_dict(state)  # strict: the adapter's keys are the same in a new process
    assert torch.equal(fresh.latent2pose(fresh.latent_pose), decoded)


# --- LEMO (sanweiliti/LEMO): a clip's per-frame parameter matrix ----------------------------


def test_lemo_clip_matrix_with_the_embedding_in_columns(smpl_dir: Path) -> None:
    """LEMO's temporal stage: per-frame results saved as a float64 numpy ``(T, 72)`` matrix
    (translation, orientation, shape, the VPoser embedding in columns ``16:48``, hands), loaded
    with ``torch.from_numpy(...).float()``, columns ``16:`` made a leaf with
    ``requires_grad = True``; every step decodes ``[:, 16:48]`` for all ``T`` frames with
    ``output_type='aa'`` then ``.view(T, -1)``, adds ``torch.mean(vposer_pose ** 2)`` and steps
    Adam after ``loss.backward(retain_graph=True)``."""
    vposer_model, _ = load_vposer("gan-s", vp_model="snapshot")
    T = 4  # noqa: N806
    body = _smpl(smpl_dir, T)
    rng = np.random.default_rng(SEED)
    init_params = np.concatenate(
        [np.zeros((T, 16)), rng.normal(size=(T, 32)), np.zeros((T, 24))], axis=1
    )
    assert init_params.dtype == np.float64
    fixed = torch.from_numpy(init_params[:, 0:16]).float()
    other = torch.from_numpy(init_params[:, 16:]).float()
    other.requires_grad = True
    target_pose = vposer_model.sample_poses(T, seed=9).reshape(T, 63)
    with torch.no_grad():
        target = body(body_pose=_with_hands(target_pose)).joints
    optimizer = torch.optim.Adam([other], lr=0.05)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        params = torch.cat([fixed, other], dim=-1)  # (T, 72)
        pose = vposer_model.decode(params[:, 16:48], output_type="aa").view(T, -1)
        joints = body(body_pose=_with_hands(pose), betas=params[:, 6:16]).joints
        loss = (joints - target).abs().mean() + 0.02 * torch.mean(params[:, 16:48] ** 2)
        loss.backward(retain_graph=True)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert other.grad is not None and not other.grad[:, 32:].any()  # hands: no data term


# --- 4D-Humans / ProHMR (smplx.SMPLLayer fed rotation matrices) ------------------------------

#: SMPL joints and smplx's landmark joints in OpenPose BODY_25 order, as 4D-Humans' and
#: ProHMR's SMPL wrappers index ``smpl_output.joints`` (24 = nose, 25..34 eyes/ears/feet).
OPENPOSE_FROM_SMPLX = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4]
OPENPOSE_FROM_SMPLX += [7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34]


class _SMPLWithOpenPose(smplx.SMPLLayer):
    """The 4D-Humans / ProHMR wrapper in outline: ``SMPLLayer`` plus a ``joint_map`` buffer to
    BODY_25 and SMPL's two hand joints appended (4D-Humans' 46 keypoints without its extra
    regressor file)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("joint_map", torch.tensor(OPENPOSE_FROM_SMPLX, dtype=torch.long))
        self.register_buffer("hand_joints", torch.tensor([22, 23], dtype=torch.long))

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        mapped = out.joints[:, self.joint_map, :]
        out.joints = torch.cat([mapped, out.joints[:, self.hand_joints, :]], dim=1)
        return out


def test_smpl_layer_with_decoded_rotation_matrices(smpl_dir: Path) -> None:
    """4D-Humans (``SMPL(**{k.lower(): v for k, v in cfg.SMPL.items()})`` with ``model_path``,
    ``gender='neutral'``, ``num_body_joints=23``) and ProHMR call the layer with rotation
    matrices and ``pose2rot=False``: ``global_orient (B, 1, 3, 3)``, ``body_pose (B, 23, 3,
    3)``, ``betas (B, 10)``. VPoser's ``matrot`` output ``(B, 1, 21, 9)`` viewed as
    ``(B, 21, 3, 3)`` plus two identity hands is that body pose; it must give the same body as
    the ``aa`` output through the axis-angle path."""
    model = _SMPLWithOpenPose(model_path=str(smpl_dir), gender="neutral", num_body_joints=23)
    vposer, _ = load_vposer("gan-s")
    B = 3  # noqa: N806
    z = torch.randn(B, vposer.latentD, generator=_gen())
    mats = vposer.decode(z, output_type="matrot").view(B, 21, 3, 3)
    hands = torch.eye(3).expand(B, 2, 3, 3)
    out = model(
        global_orient=torch.eye(3).expand(B, 1, 3, 3),
        body_pose=torch.cat([mats, hands], dim=1),
        betas=torch.zeros(B, 10),
        pose2rot=False,
    )
    assert out.joints.shape == (B, 27, 3) and torch.isfinite(out.joints).all()
    # the nose keypoint is the landmark vertex smplx's default table names for SMPL
    nose = smplx.vertex_ids.vertex_ids["smplh"]["nose"]
    assert torch.allclose(out.joints[:, 0], out.vertices[:, nose])

    aa = vposer.decode(z, output_type="aa").view(B, -1)
    plain = smplx.SMPL(str(smpl_dir), batch_size=B)(body_pose=_with_hands(aa))
    # two float32 routes to the same rotations: axis-angle round trip and Rodrigues (~1e-6
    # per entry), carried down a 9-level chain of a 1.7 m body: 1e-5 m is ten times above that
    assert torch.allclose(plain.vertices, out.vertices, atol=1e-5)


# --- SPIN / EFT / mmhuman3d: SMPLify with the exported GMM -----------------------------------


class _MaxMixturePrior(nn.Module):
    """SMPLify's ``MaxMixturePrior`` as SPIN / EFT / mmhuman3d build it, from its description:
    ``gmm_{num_gaussians:02d}.pkl`` in ``prior_folder``, a latin-1 pickle of a plain dict;
    ``means``, ``covars`` *and* ``weights`` cast with ``.astype(np_dtype)`` (mmhuman3d); buffers
    (``.to(device)`` moves them); the merged energy (min over components of ``0.5 d^T P d -
    log nll_weights``); mmhuman3d's ``forward(body_pose, loss_weight_override=None,
    reduction_override=None)``, SPIN's ``forward(pose, betas)`` (``betas`` unused)."""

    def __init__(
        self,
        prior_folder: Path,
        num_gaussians: int = 8,
        dtype: torch.dtype = torch.float32,
        epsilon: float = 1e-16,
        reduction: str | None = None,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        with open(Path(prior_folder) / f"gmm_{num_gaussians:02d}.pkl", "rb") as fh:
            gmm = pickle.load(fh, encoding="latin1")
        assert type(gmm) is dict
        means = gmm["means"].astype(np_dtype)
        covs = gmm["covars"].astype(np_dtype)
        gmm["weights"].astype(np_dtype)
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.register_buffer("means", torch.tensor(means, dtype=dtype))
        self.register_buffer("covs", torch.tensor(covs, dtype=dtype))
        precisions = np.stack([np.linalg.inv(c) for c in covs]).astype(np_dtype)
        self.register_buffer("precisions", torch.tensor(precisions, dtype=dtype))
        sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in gmm["covars"]])
        const = (2 * np.pi) ** (69 / 2.0)
        nll_weights = np.asarray(gmm["weights"] / (const * (sqrdets / sqrdets.min())))
        self.register_buffer("nll_weights", torch.tensor(nll_weights, dtype=dtype)[None])
        self.register_buffer("weights", torch.tensor(gmm["weights"], dtype=dtype)[None])
        cov_dets = [np.log(np.linalg.det(c.astype(np_dtype)) + epsilon) for c in covs]
        self.register_buffer("cov_dets", torch.tensor(np.array(cov_dets), dtype=dtype))
        self.random_var_dim = self.means.shape[1]

    def get_mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def forward(
        self,
        body_pose: torch.Tensor,
        betas: torch.Tensor | None = None,
        loss_weight_override: float | None = None,
        reduction_override: str | None = None,
    ) -> torch.Tensor:
        diff = body_pose[:, None] - self.means
        quad = (torch.einsum("mij,bmj->bmi", self.precisions, diff) * diff).sum(-1)
        energy = (0.5 * quad - torch.log(self.nll_weights)).min(dim=1).values
        weight = self.loss_weight if loss_weight_override is None else loss_weight_override
        energy = weight * energy
        reduction = reduction_override or self.reduction
        if reduction == "sum":
            return energy.sum()
        if reduction == "mean":
            return energy.mean()
        return energy


@pytest.fixture(scope="module")
def gmm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prior")
    load_pretrained("gmm").export_smplify(folder / "gmm_08.pkl")
    return folder


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spin_style_smplify_on_the_standin(
    smpl_dir: Path, gmm_folder: Path, dtype: torch.dtype
) -> None:
    """SPIN / EFT (``smplify/smplify.py``) and mmhuman3d (``registrants/smplify.py`` with
    ``MaxMixturePriorLoss(prior_folder=..., num_gaussians=8, loss_weight=4.78 ** 2,
    reduction='sum')``): ``MaxMixturePrior(...).to(device)``, the SMPL body built with
    ``batch_size=B, create_transl=False`` from ``SMPL_MODEL_DIR``; ``body_pose (B, 69)`` is the
    free variable, started from the mixture's ``get_mean()``; every step evaluates the 45
    smplx joints and the prior on all 69 numbers; per-sample losses with
    ``reduction_override='none'`` at the end. The mmhuman3d ``dtype`` option runs in float64."""
    B = 2  # noqa: N806
    prior = _MaxMixturePrior(gmm_folder, num_gaussians=8, dtype=dtype, reduction="sum")
    prior = prior.to("cpu")
    prior.loss_weight = 4.78**2
    body = _smpl(smpl_dir, B).to(dtype=dtype)
    target_pose = _with_hands(load_pretrained("gmm").sample(B, generator=_gen()).to(dtype))
    with torch.no_grad():
        target = body(body_pose=target_pose).joints
    assert target.shape == (B, 45, 3)

    body_pose = prior.get_mean().detach().expand(B, -1).clone().requires_grad_(True)
    assert body_pose.shape == (B, 69) and body_pose.dtype == dtype
    optimizer = torch.optim.Adam([body_pose], lr=0.02)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        joints = body(body_pose=body_pose).joints
        data = 100.0 * (joints - target).pow(2).sum()
        loss = data + prior(body_pose, None, loss_weight_override=1e-2)
        loss.backward()
        assert torch.isfinite(body_pose.grad).all()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    per_sample = prior(body_pose.detach(), reduction_override="none")
    assert per_sample.shape == (B,) and per_sample.dtype == dtype
    assert torch.isfinite(per_sample).all() and torch.isfinite(prior.cov_dets).all()


# --- What these pipelines do to the module and to its outputs --------------------------------


def test_outputs_take_view_without_contiguous() -> None:
    """Projects call ``.view`` on the decoded tensors directly (only some write
    ``.contiguous()`` first): v2's ``['pose_body'].view(bs, -1)`` and
    ``['pose_body_matrot'].view(-1, 3, 3)``, v1's ``decode(z).view(-1, 3, 3)`` and
    ``decode(z, 'aa').view(bs, -1)``, for one latent, a batch, a slice of a parameter and a
    ``(B, T, 32)`` sequence; also under ``torch.inference_mode()`` (Lightning's prediction)."""
    vp, _ = load_model("gan-s")
    v1, _ = load_vposer("gan-s")
    params = torch.randn(3, 72, generator=_gen())
    for z in (torch.randn(1, 32), torch.randn(4, 32), params[:, 16:48]):
        bs = z.shape[0]
        out = vp.decode(z)
        assert out["pose_body"].view(bs, -1).shape == (bs, 63)
        assert out["pose_body_matrot"].view(-1, 3, 3).shape == (bs * 21, 3, 3)
        assert v1.decode(z).view(-1, 3, 3).shape == (bs * 21, 3, 3)
        assert v1.decode(z, output_type="aa").view(bs, -1).shape == (bs, 63)
    seq = vp.decode(torch.randn(2, 5, 32, generator=_gen()))
    assert seq["pose_body"].view(2, 5, 63).shape == (2, 5, 63)
    with torch.inference_mode():
        assert vp.decode(torch.zeros(2, 32))["pose_body"].view(2, -1).shape == (2, 63)
        assert v1.sample_poses(2, seed=0).view(2, -1).shape == (2, 63)


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_the_posterior_as_v1_and_v2_code_reads_it(alias: str) -> None:
    """v1's forward builds ``{'std': q_z.scale}`` and samples ``q_z.rsample()``; v2's builds
    ``poZ_body_std`` from ``q_z.scale``; user code calls ``encode(x).rsample()`` /
    ``.sample()`` for a start latent. A GAN's posterior is a point: ``scale`` 0, every sample
    is the mean; the VAE's has a spread."""
    vposer, _ = load_vposer(alias)
    pose = vposer.sample_poses(3, seed=2).reshape(3, 63)
    q = vposer.encode(pose)
    assert q.scale.shape == q.mean.shape == (3, 32)
    draw = q.rsample()
    assert draw.shape == (3, 32) and torch.isfinite(draw).all()
    if alias == "vae":
        assert (q.scale > 0).all()
    else:
        assert not q.scale.any() and torch.equal(draw, q.mean) and torch.equal(q.sample(), q.mean)
    vp, _ = load_model(alias)
    out = vp(pose)
    assert torch.equal(out["poZ_body_std"], out["q_z"].scale)


def test_module_casts_and_devices_as_pipelines_call_them() -> None:
    """``vposer.float()`` (HuMoR, after loading), ``.double()`` (a float64 SMPLify-X run),
    ``.to(device)`` returning the module, ``.eval()``: a saved float32 ``z`` decodes to the
    same pose through each (float32 rounding through the network only)."""
    base, _ = load_vposer("gan-s")
    z = torch.randn(3, 32, generator=_gen())
    ref = base.decode(z, output_type="aa")
    for cast in (lambda m: m.float(), lambda m: m.double(), lambda m: m.to("cpu").eval()):
        module, _ = load_vposer("gan-s")
        module = cast(module)
        assert module is not None
        out = module.decode(z, output_type="aa")
        assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-5)
    rot = axis_angle_to_rotmat(ref.reshape(-1, 3))
    assert torch.isfinite(rot).all()


# --- Non-finite poses reaching encode (v2's IK engine, encode inside a loss closure) ---------


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_ik_engine_masks_the_latents_of_non_finite_rows(alias: str) -> None:
    """human_body_prior v2 ``models/ik_engine.py``: the start is
    ``vp.encode(initial_body_params['pose_body']).mean`` (poses a caller passes, e.g. the
    previous frames' results, some of which diverged), and every closure masks the prior terms
    with ``nonan_mask = torch.isnan(poZ_body).sum(-1) == 0``: VPoser's encoder gives a NaN
    latent for a NaN row and leaves the others alone. The adapter must do the same, not
    refuse the whole batch."""
    vp, _ = load_model(alias, remove_words_in_model_weights="vp_model.", disable_grad=True)
    pose_body = vp.sample_poses(4, seed=4)["pose_body"].reshape(4, 63).clone()
    pose_body[1, 5] = float("nan")
    pose_body[3, 0] = float("inf")
    poz = vp.encode(pose_body).mean
    assert poz.shape == (4, 32)
    nonan_mask = torch.isnan(poz).sum(-1) == 0
    assert nonan_mask.tolist() == [True, False, True, False]
    assert torch.isnan(poz[~nonan_mask]).all()
    # their spread is 0, so a draw (EasyMocap's .sample()) is NaN there instead of an error
    q = vp.encode(pose_body)
    assert not q.stddev[~nonan_mask].any() and torch.isnan(q.sample()[~nonan_mask]).all()
    # the finite rows are encoded as if alone
    assert torch.equal(poz[nonan_mask], vp.encode(pose_body[[0, 2]]).mean)
    free = nn.Parameter(poz.detach(), requires_grad=True)
    pose = vp.decode(free)["pose_body"].contiguous().view(-1, 63)
    assert torch.isfinite(pose[nonan_mask]).all()
    prior = free[nonan_mask].pow(2).sum()
    prior.backward()
    assert torch.isfinite(prior) and torch.isfinite(free.grad[nonan_mask]).all()


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_encode_in_a_closure_survives_a_non_finite_trial_step(alias: str) -> None:
    """EasyMocap's ``VPoserPrior`` (``decode(encode(poses).sample())`` against ``poses``) and
    HuMoR's third stage (``pose2latent`` of the rolled-out sequence) encode inside the loss
    closure. A strong-Wolfe line search evaluates the closure at trial points that can overflow;
    with VPoser such a point gives a NaN loss and the search backs off, so the closure must
    return NaN there, not raise. At finite points the loss and its gradient stay finite, also
    for the rows beside a non-finite one (the VAE's encoder is differentiable)."""
    vp, _ = load_model(alias)
    start = vp.sample_poses(2, seed=6)["pose_body"].reshape(2, 63)

    def closure_at(poses: torch.Tensor) -> torch.Tensor:
        latent = vp.encode(poses)
        ret = vp.decode(latent.sample())["pose_body"].reshape(poses.shape[0], 63)
        return (poses - ret).pow(2).sum()

    trial = start.clone()
    trial[0, 3] = float("inf")  # an overflowing trial step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the GAN's no-gradient note
        assert torch.isnan(closure_at(trial))
        poses = start.clone().requires_grad_(True)
        loss = closure_at(poses)
        loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(poses.grad).all()
    if alias == "vae":
        x = trial.clone().requires_grad_(True)
        vp.encode(x).mean[1].pow(2).sum().backward()
        assert torch.isfinite(x.grad[1]).all() and x.grad[1].abs().sum() > 0


# --- The decoder inside a regression network (3DCrowdNet) ------------------------------------


class _VposerHead(nn.Module):
    """hongsukchoi/3DCrowdNet_RELEASE common/nets/module.py (``Vposer``): the loader's module
    held inside a network, put in eval mode once in ``__init__``; ``forward`` decodes the
    network's predicted code ``output_type='aa'``, ``.view(bs, -1).view(-1, 21, 3)``, and
    appends two zero hand joints for SMPL's 23."""

    def __init__(self) -> None:
        super().__init__()
        self.vposer, _ = load_vposer("gan-s", vp_model="snapshot")
        self.vposer.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        bs = z.shape[0]
        body = self.vposer.decode(z, output_type="aa").view(bs, -1).view(-1, 21, 3)
        hands = torch.zeros(bs, 1, 3, dtype=body.dtype)
        return torch.cat((body, hands, hands), 1).view(bs, -1)


class _Regressor(nn.Module):
    """3DCrowdNet main/model.py: features -> ``pose_out`` (a linear layer to the 32-d code)
    -> the ``Vposer`` module -> SMPL's ``(B, 69)`` body pose."""

    def __init__(self) -> None:
        super().__init__()
        self.pose_out = nn.Linear(16, 32)
        self.vposer = _VposerHead()

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.vposer(self.pose_out(feat))


def test_regressor_trains_through_the_decoder_and_reloads(tmp_path: Path) -> None:
    """3DCrowdNet trains the whole network in train mode with one optimiser over
    ``model.parameters()`` (the loaded prior's included) and the loss on the decoded SMPL pose,
    saves ``model.state_dict()`` and reloads it with ``strict=False``. The gradient must reach
    the layer that predicts the code, the prior must stay frozen (weights bitwise, eval mode,
    weight decay included) and the reloaded network must predict the same poses."""
    torch.manual_seed(SEED)  # the regressor's own initial weights
    model = _Regressor()
    prior_before = {k: v.clone() for k, v in model.vposer.vposer.state_dict().items()}
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    feat = torch.randn(8, 16, generator=_gen())
    target = _with_hands(model.vposer.vposer.sample_poses(8, seed=3).reshape(8, 63))
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = (model(feat) - target).abs().mean()
        loss.backward()
        assert model.pose_out.weight.grad.abs().sum() > 0
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    prior = model.vposer.vposer
    assert not prior.prior.training and all(p.grad is None for p in prior.parameters())
    after = prior.state_dict()
    assert all(torch.equal(prior_before[k], after[k]) for k in prior_before)

    model.eval()
    with torch.no_grad():
        pred = model(feat)
    torch.save({"network": model.state_dict()}, tmp_path / "snapshot.pth.tar")
    ckpt = torch.load(tmp_path / "snapshot.pth.tar", map_location="cpu", weights_only=True)
    again = _Regressor()
    missing, unexpected = again.load_state_dict(ckpt["network"], strict=False)
    assert not missing and not unexpected
    with torch.no_grad():
        assert torch.equal(again.eval()(feat), pred)


def test_regressor_under_bf16_autocast() -> None:
    """Regressors trained with mixed precision (Lightning's ``precision="bf16-mixed"``: the
    step runs inside ``torch.autocast``) decode the predicted code there: the adapter's linear
    layers then compute in bfloat16, as VPoser's would. The pose comes back in the code's dtype,
    finite, its rotation matrices orthonormal to bfloat16's precision, and the gradient reaches
    the code head."""
    torch.manual_seed(SEED)
    model = _Regressor().train()
    feat = torch.randn(4, 16, generator=_gen())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        code = model.pose_out(feat)  # bfloat16, as autocast's linear layers give
        assert code.dtype == torch.bfloat16
        rot = model.vposer.vposer.decode(code.float(), output_type="matrot")
        pose = model(feat)
    assert rot.dtype == torch.float32 and pose.dtype == torch.bfloat16
    assert torch.isfinite(pose).all() and torch.isfinite(rot).all()
    r = rot.reshape(-1, 3, 3)
    # each entry of R R^T sums three products of entries with relative error <= 2u after
    # bfloat16 rounding (u = 2^-8), so |R R^T - I| <= ~7u: 8u = 2^-5 leaves a margin
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3).expand_as(r), atol=2.0**-5)
    pose.float().pow(2).sum().backward()
    grad = model.pose_out.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


# --- What pipelines do to the decoded tensors --------------------------------------------------


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_in_place_edits_of_decoded_poses_keep_the_gradient(alias: str) -> None:
    """Regressors and fitters overwrite parts of the decoded pose in place before the body
    model: the wrists of v2's ``['pose_body_matrot'].reshape(-1, 21, 3, 3)`` set to the
    identity, v1's ``decode(z, output_type='aa').view(bs, -1)`` with ``[:, -6:] = 0.``. The
    backward pass must work and give the gradient of the same edit made out of place."""
    vp, _ = load_model(alias)
    v1, _ = load_vposer(alias)
    z0 = torch.randn(3, 32, generator=_gen())
    eye = torch.eye(3).expand(3, 2, 3, 3)
    weights = torch.randn(3, 21, 3, 3, generator=_gen(SEED + 1))

    def grads(in_place: bool) -> tuple[torch.Tensor, torch.Tensor]:
        z = z0.clone().requires_grad_(True)
        rot = vp.decode(z)["pose_body_matrot"].reshape(-1, 21, 3, 3)
        if in_place:
            rot[:, 19:21] = eye
        else:
            rot = torch.cat([rot[:, :19], eye], 1)
        (weights * rot).sum().backward()
        y = z0.clone().requires_grad_(True)
        body = v1.decode(y, output_type="aa").view(3, -1)
        if in_place:
            body[:, -6:] = 0.0
        else:
            body = torch.cat([body[:, :-6], torch.zeros(3, 6)], 1)
        (body * weights.reshape(3, -1)[:, :63]).sum().backward()
        return z.grad, y.grad

    edited, rebuilt = grads(True), grads(False)
    for a, b in zip(edited, rebuilt, strict=True):
        assert torch.isfinite(a).all() and a.abs().sum() > 0
        # the same graph up to the order of float32 sums (a few eps of the gradient's size)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


# --- The encoder's posterior as a loss (KL to N(0, I)) -----------------------------------------


@pytest.mark.parametrize("alias", ["vae", "gan-s"])
def test_posterior_kl_loss_in_chunks(alias: str) -> None:
    """Motion generators score poses by the KL of VPoser's posterior to ``N(0, I)``:
    ``dist = vposer.encode(pose[..., 1:22, :].reshape(-1, 63).float())`` chunk by chunk,
    ``logvar = 2 log(dist.scale + 1e-8)``, ``-0.5 sum(1 + logvar - mean^2 - exp(logvar))``.
    With the VAE this is torch's ``kl_divergence`` to ``N(0, I)`` (the 1e-8 aside) and trains
    the poses; with a GAN, whose posterior is a point (scale 0), the hand-written KL stays
    finite but carries no gradient (docs/compat.md: load ``"vae"`` for encoder gradients),
    and torch's own ``kl_divergence`` of a point is infinite."""
    vp, _ = load_model(alias)
    B, T = 2, 3  # noqa: N806
    body = vp.sample_poses(B * T, seed=5)["pose_body"].reshape(B, T, 21, 3)
    root = torch.zeros(B, T, 1, 3)
    pose = torch.cat([root, body, torch.zeros(B, T, 2, 3)], 2).double().requires_grad_(True)
    smpl_pose = pose[..., 1:22, :].reshape(-1, 63).float()
    kls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the GAN's no-gradient note
        for i in range(0, smpl_pose.shape[0], 4):
            dist = vp.encode(smpl_pose[i : i + 4])
            mean, std = dist.mean, dist.scale
            logvar = 2.0 * torch.log(std + 1e-8)
            kls.append(-0.5 * torch.sum(1 + logvar - mean**2 - logvar.exp(), dim=-1))
    kl = torch.cat(kls)
    assert kl.shape == (B * T,) and torch.isfinite(kl).all()
    unit = torch.distributions.Normal(torch.zeros(B * T, 32), torch.ones(B * T, 32))
    exact = torch.distributions.kl_divergence(vp.encode(smpl_pose.detach()), unit).sum(-1)
    if alias == "vae":
        # the VAE's posterior std is > 0.05 for these poses, so the 1e-8 moves log(std) by
        # < 2e-7, under float32 rounding: the two differ by the rounding of 32-term sums
        assert float(vp.encode(smpl_pose.detach()).scale.min()) > 0.05
        assert torch.allclose(kl.detach(), exact, rtol=1e-5)
        kl.mean().backward()
        assert pose.grad is not None and pose.grad[..., 1:22, :].abs().sum() > 0
        assert not pose.grad[..., 0, :].any()  # the root is not scored
    else:
        assert not kl.requires_grad
        assert torch.isinf(exact).all()
