"""Poses as smplx-based code holds them, given to advprior's priors and bodies.

Regression and fitting pipelines built on smplx keep ``body_pose`` per joint (``(B, 23, 3)``,
smplx's ``reshape(-1, 21, 3)``, a 3DPW or AMASS pose viewed ``(B, 24, 3)`` and cut ``[:, 1:]``)
or as rotation matrices (SPIN's ``pred_rotmat[:, 1:]``, 4D-Humans' and ProHMR's
``pred_smpl_params["body_pose"] (B, 23, 3, 3)`` with ``pose2rot=False``), and
``global_orient`` with a joint axis (``(B, 1, 3)``, ``(B, 1, 3, 3)``). Each layout must give
what the flat axis-angle layout gives, and a matrix that is no rotation, or a whole pose where
the body is wanted, must be refused with a message that says what to pass.
"""

from __future__ import annotations

import pytest
import smplx
import torch
from conftest import FK32_ATOL

from advprior.body import forward_kinematics, load_body_model, standin_folder
from advprior.hub import load_pretrained
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

B = 3  # a batch of 3 is where a (B, 3, 3) matrix broadcast silently against (B,) poses


def _gen(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gan():
    return load_pretrained("gan-s")


@pytest.fixture(scope="module")
def smpl_rotmats(gan) -> torch.Tensor:
    """``(B, 24, 3, 3)``: a regressor's output as SPIN and 4D-Humans hold it (a global
    orientation, then SMPL's 23 body joints with resting hands)."""
    body = gan.decode(gan.sample_latent(B, generator=_gen()), output="rotmat", body="smpl")
    glob = axis_angle_to_rotmat(torch.randn(B, 1, 3, generator=_gen(6)))
    return torch.cat([glob, body], 1)


def _layouts(rotmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same body pose ``(B, J, 3, 3)`` as matrices (also VPoser's flattened ``matrot``),
    per joint and flat."""
    aa = rotmat_to_axis_angle(rotmat)
    return {"rotmat": rotmat, "matrot": rotmat.flatten(-2), "joints": aa, "flat": aa.flatten(-2)}


def test_global_orient_with_a_joint_axis_poses_one_body_per_pose(body, smpl_rotmats) -> None:
    """``global_orient (B, 1, 3)`` (smplx's SMPL-X layout, ``full_pose.view(B, 24, 3)[:, :1]``)
    used to broadcast against ``body_pose (B, 69)`` into a ``(B, B)`` grid of bodies, every pose
    under every orientation, with no error."""
    full = rotmat_to_axis_angle(smpl_rotmats)  # (B, 24, 3)
    go, pose = full[:, :1], full[:, 1:].flatten(-2)
    out = body(global_orient=go, body_pose=pose)
    ref = body(global_orient=go[:, 0], body_pose=pose)
    assert out.joints.shape == (B, 24, 3) and out.vertices.shape == ref.vertices.shape
    assert torch.equal(out.vertices, ref.vertices)
    fk = forward_kinematics(go, pose)
    assert fk.shape == (B, 24, 3)
    assert torch.equal(fk, forward_kinematics(go[:, 0], pose))
    # a batch-1 orientation as a matrix posed three bodies (its rows read as rotation vectors)
    one = body(global_orient=smpl_rotmats[:1, 0], body_pose=pose[:1])
    assert one.joints.shape == (1, 24, 3)
    assert torch.allclose(one.joints, ref.joints[:1], atol=FK32_ATOL)
    # what smplx itself poses from the same numbers
    layer = smplx.SMPL(str(standin_folder() / "smpl"), batch_size=B)
    theirs = layer(global_orient=go[:, 0], body_pose=pose)
    assert torch.allclose(out.joints, theirs.joints[:, :24], atol=FK32_ATOL)
    # broadcasting that is meant as such is unchanged: one orientation per clip, (T, 1, 3)
    # against (T, N, 63)
    clips = pose[:, None].expand(B, 2, 69)
    assert body(global_orient=go, body_pose=clips).joints.shape == (B, 2, 24, 3)


@pytest.mark.parametrize("batch", [1, B])
def test_rotation_matrices_pose_as_smplx_layer_does(gan, batch: int) -> None:
    """4D-Humans' call, ``SMPLLayer(global_orient=(B, 1, 3, 3), body_pose=(B, 23, 3, 3),
    pose2rot=False)``, with the same tensors given to ``BodyModel``. Before, ``body_pose`` as
    matrices was refused, and a ``(1, 3, 3)`` orientation with a batch-1 pose posed three bodies
    (the matrix's rows read as three rotation vectors), silently."""
    z = gan.sample_latent(batch, generator=_gen(7))
    mats = gan.decode(z, output="rotmat", body="smpl")
    glob = axis_angle_to_rotmat(torch.randn(batch, 1, 3, generator=_gen(8)))
    layer = smplx.SMPLLayer(model_path=str(standin_folder() / "smpl"))
    theirs = layer(global_orient=glob, body_pose=mats)
    body = load_body_model(standin_folder())  # the same file, 6890 vertices
    for go in (glob, glob[:, 0]):
        ours = body(global_orient=go, body_pose=mats)
        assert ours.vertices.shape == (batch, 6890, 3)
        # matrix -> axis-angle -> matrix in float32 (~1e-6 rad per joint) against smplx's
        # matrices, down SMPL's chain of a 1.7 m body: 1e-5 m is several times that
        assert torch.allclose(ours.vertices, theirs.vertices, atol=1e-5)
        fk = forward_kinematics(go, mats)
        assert fk.shape == (batch, 24, 3)
        # one sample at a time (torch.func.vmap): an unbatched matrix pose and its orientation
        per_sample = torch.func.vmap(forward_kinematics)(go, mats)
        assert torch.allclose(per_sample, fk, atol=FK32_ATOL)
    # the 21-joint decode (SMPL-X's body_pose) on the SMPL body: hands at rest, as for 63 values
    mats21 = gan.decode(z, output="rotmat")
    flat21 = gan.decode(z)
    assert torch.allclose(
        body(glob, mats21).joints, body(glob[:, 0], flat21).joints, atol=FK32_ATOL
    )


@pytest.mark.parametrize("joints", [21, 23])
def test_every_prior_takes_the_smplx_layouts(gan, smpl_rotmats, joints: int) -> None:
    """invert, score, project_pose (GAN-S, the VAE), and the GMM's nll / log_prob / energy /
    score give the same numbers for matrices, per-joint and flat axis-angle. Before, everything
    but the flat layout was a ValueError."""
    forms = _layouts(smpl_rotmats[:, 1 : 1 + joints])
    flat = forms["flat"]
    opts = {"steps": 2, "bank_size": 256}
    want_z = gan.invert(flat, **opts)
    want_score = gan.score(flat, **opts)
    want_pose = gan.project_pose(flat, **opts)
    vae, gmm = load_pretrained("vae"), load_pretrained("gmm")
    for name, pose in forms.items():
        # the conversion is the one flat itself came from: identical inputs, identical outputs
        assert torch.equal(gan.invert(pose, **opts), want_z), name
        assert torch.equal(gan.score(pose, **opts), want_score), name
        projected = gan.project_pose(pose, **opts)
        assert projected.shape == pose.shape, name  # back in the layout it came in
        if name in ("rotmat", "matrot"):
            # decoded as matrices, converted here, against the decoder's closed form to
            # axis-angle: float32 rounding of each, ~1e-6 rad
            mats = projected.unflatten(-1, (3, 3)) if name == "matrot" else projected
            assert torch.allclose(rotmat_to_axis_angle(mats).flatten(-2), want_pose, atol=1e-5)
        else:
            assert torch.equal(projected.flatten(-2) if name == "joints" else projected, want_pose)
        assert torch.equal(vae.invert(pose), vae.invert(flat)), name
        for method in ("nll", "log_prob", "energy", "score"):
            assert torch.equal(getattr(gmm, method)(pose), getattr(gmm, method)(flat)), name


def test_non_rotations_and_whole_poses_are_refused_with_what_to_pass(gan, smpl_rotmats) -> None:
    body = smpl_rotmats[:, 1:]
    with pytest.raises(ValueError, match=r"not rotations .*rot6d_to_rotmat"):
        gan.invert(1.5 * body, steps=1)  # unnormalised columns
    mirror = body * torch.tensor([1.0, 1.0, -1.0])  # orthonormal, determinant -1
    with pytest.raises(ValueError, match="determinant"):
        load_pretrained("gmm").nll(mirror)
    with pytest.raises(ValueError, match=r"global_orient .*not rotations"):
        load_body_model()(global_orient=2 * smpl_rotmats[:, :1], body_pose=body)
    full = rotmat_to_axis_angle(smpl_rotmats)
    with pytest.raises(ValueError, match=r"got \(3, 72\); SMPL's full pose .*\[\.\.\., 3:\]"):
        gan.score(full.flatten(-2))
    with pytest.raises(ValueError, match=r"\(3, 24, 3\); .*\[\.\.\., 1:, :\]"):
        gan.invert(full)
    with pytest.raises(ValueError, match=r"\(3, 24, 3, 3\); .*\[\.\.\., 1:, :, :\]"):
        load_pretrained("vae").encode(smpl_rotmats)
    # type errors still name the shapes wanted
    with pytest.raises(TypeError, match=r"floating-point .*\(\.\.\., 63\) or \(\.\.\., 69\)"):
        gan.invert(torch.zeros(2, 21, 3, dtype=torch.long))
    # a NaN row stays what it was: refused where poses must be finite, passed on elsewhere
    nan = body.clone()
    nan[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        gan.invert(nan, steps=1)
    assert torch.isnan(load_pretrained("gmm").nll(nan)[0])


def test_spin_style_init_from_regressor_matrices(smpl_rotmats) -> None:
    """SPIN's SMPLify starts from the regressor's ``pred_rotmat``: its pose term and the body it
    poses take the matrices as they come, no conversion in user code."""
    gmm = load_pretrained("gmm")
    pose = smpl_rotmats[:, 1:].clone().requires_grad_(True)
    energy = gmm.energy(pose)
    energy.sum().backward()
    assert energy.shape == (B,) and torch.isfinite(pose.grad).all()
    out = load_body_model()(global_orient=smpl_rotmats[:, :1], body_pose=smpl_rotmats[:, 1:])
    assert out.joints.shape == (B, 24, 3)
