"""advprior.compat against how public third-party code calls VPoser and SMPLify's GMM prior.

Each test re-enacts one call pattern found in a public project (named in its comment: the
repository and file), written here from scratch, with only the import swapped for
``advprior.compat``. What a pattern relies on (argument names, output keys and shapes, the
``.view``/``.reshape`` done on outputs, dtypes, no-grad contexts) is what the test checks.
"""

from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.compat import load_model, load_vposer
from advprior.hub import load_pretrained
from advprior.rotations import rotmat_to_axis_angle

GEN = 7  # seed of the random numbers the tests draw


def _gen(seed: int = GEN) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _is_rotation(rot: torch.Tensor) -> bool:
    r = rot.reshape(-1, 3, 3).double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    # float32 rotation matrices: orthonormal to a few eps (1e-5 leaves a wide margin)
    return bool(torch.allclose(r @ r.transpose(-1, -2), eye, atol=1e-5))


# --- SMPLify-X (vchoutas/smplify-x): VPoser v1 inside a single-frame fit ---------------------


@pytest.mark.parametrize(
    ("alias", "dtype"),
    [
        ("gan-s", torch.float32),
        ("gan-s", torch.float64),
        ("gan-u", torch.float32),
        ("gan-n", torch.float32),
        ("vae", torch.float64),
    ],
)
def test_smplifyx_fit_single_frame_pattern(tmp_path: Path, alias: str, dtype: torch.dtype) -> None:
    """smplifyx/fit_single_frame.py + fitting.py: the embedding is a (1, 32) leaf in the run's
    dtype (``--float_dtype float64`` too), the loader's module is moved with ``.to(device=)``
    and put in eval mode; ``guess_init`` decodes under ``@torch.no_grad()``; each orientation
    try resets with ``fill_(0)``; the closure decodes ``output_type='aa'`` and ``.view(1, -1)``,
    appends six zeros for SMPL's hands; the embedding is saved with ``pickle`` (protocol 2) as
    ``body_pose`` and decoded again later by the renderer, through ``pose_embedding[:] = ...``.
    """
    device = torch.device("cpu")
    vposer, _ = load_vposer(alias, vp_model="snapshot")
    vposer = vposer.to(device=device)
    vposer.eval()
    pose_embedding = torch.zeros([1, 32], dtype=dtype, device=device, requires_grad=True)

    with torch.no_grad():  # guess_init is decorated with @torch.no_grad()
        body_pose = vposer.decode(pose_embedding, output_type="aa").view(1, -1)
        wrists = torch.zeros([body_pose.shape[0], 6], dtype=body_pose.dtype, device=device)
        body_pose = torch.cat([body_pose, wrists], dim=1)
    assert body_pose.shape == (1, 69) and body_pose.dtype == dtype

    target = vposer.sample_poses(1, seed=3).reshape(1, 63).to(dtype)
    best = None
    for _orientation in range(2):
        with torch.no_grad():
            pose_embedding.fill_(0)
        optimizer = torch.optim.Adam([pose_embedding], lr=0.05)

        def closure(optimizer: torch.optim.Optimizer = optimizer) -> torch.Tensor:
            optimizer.zero_grad()
            pose = vposer.decode(pose_embedding, output_type="aa").view(1, -1)
            pose = torch.cat([pose, torch.zeros([1, 6], dtype=pose.dtype)], dim=1)
            loss = (pose[:, :63] - target).pow(2).sum() + 1e-3 * pose_embedding.pow(2).sum()
            loss.backward()
            return loss

        first = float(closure().detach())
        for _ in range(60):
            optimizer.step(closure)
        last = float(closure().detach())
        # z = 0 has a gradient (GAN-S's sphere has no origin: the chart gives it one)
        assert last < 0.5 * first
        best = last if best is None else min(best, last)
    assert pose_embedding.abs().sum() > 0

    result = {"body_pose": pose_embedding.detach().cpu().numpy()}
    with open(tmp_path / "000.pkl", "wb") as fh:
        pickle.dump(result, fh, protocol=2)
    fitted = vposer.decode(pose_embedding, output_type="aa").view(1, -1).detach()

    # render_results.py: a fresh embedding filled from the pickle, then decoded
    with open(tmp_path / "000.pkl", "rb") as fh:
        data = pickle.load(fh, encoding="latin1")
    again, _ = load_vposer(alias, vp_model="snapshot")
    embedding = torch.zeros([1, 32], dtype=dtype, requires_grad=True)
    with torch.no_grad():
        embedding[:] = torch.tensor(data["body_pose"], device=device, dtype=dtype)
    assert torch.equal(again.decode(embedding, output_type="aa").view(1, -1), fitted)


# --- human_body_prior v1: tutorials and the loader's own example ----------------------------


def test_v1_sampling_patterns() -> None:
    """human_body_prior/tools/model_loader.py (``__main__``) and tutorials: ``sample_poses(10)``
    copied to numpy; ``sample_poses(num_poses=1)[0][0].reshape(1, -1)`` as a 63-d ``body_pose``;
    a project's own sampler drawing ``np.random.normal(size=(n, vposer.latentD))`` and decoding
    it with ``output_type`` then ``.reshape(n, 1, -1)``."""
    vposer, ps = load_vposer("gan-s", vp_model="snapshot")
    poses = vposer.sample_poses(10).detach().cpu().numpy()
    assert poses.shape == (10, 1, 21, 3) and np.isfinite(poses).all()
    one = vposer.sample_poses(num_poses=1)[0][0].reshape(1, -1)
    assert one.shape == (1, 63)
    rng = np.random.default_rng(GEN)
    zgen = torch.tensor(rng.normal(0.0, 1.0, size=(4, vposer.latentD)), dtype=torch.float32)
    for output_type, width in (("aa", 63), ("matrot", 189)):
        body = vposer.decode(zgen, output_type=output_type).reshape(4, 1, -1)
        assert body.shape == (4, 1, width)
    assert ps.latentD == vposer.latentD == 32


def test_v1_loader_takes_a_model_class() -> None:
    """human_body_prior/tools/model_loader.py documents ``vp_model`` as ``'snapshot'`` or a
    VPoser class (``from human_body_prior.train.vposer_smpl import VPoser`` then
    ``load_vposer(expr_dir, vp_model=VPoser)``); code that swapped only the loader's import
    still passes its class."""

    class VPoser(torch.nn.Module):  # stands for human_body_prior's class
        pass

    vposer, ps = load_vposer("gan-s", vp_model=VPoser)
    assert ps.latentD == 32 and vposer.decode(torch.zeros(1, 32)).shape == (1, 1, 21, 9)
    with pytest.raises(TypeError, match="vp_model"):
        load_vposer("gan-s", vp_model=False)


def test_v1_settings_have_the_ini_keys() -> None:
    """v1's loader builds its model from the settings file's ``num_neurons``, ``latentD`` and
    ``data_shape`` (human_body_prior/tools/model_loader.py); code that reads them from ``ps``
    finds them."""
    _, ps = load_vposer("gan-s")
    assert ps.latentD == 32 and ps.num_neurons == ps.model_params.num_neurons == 512
    assert ps.data_shape == [1, 21, 3] and math.prod(ps.data_shape) == 63


def test_v1_decode_of_one_saved_row() -> None:
    """A project decoding saved per-frame embeddings one row at a time:
    ``vposer.decode(z[i]).reshape(-1, 3, 3)`` (default ``matrot``) gives the frame's 21
    rotation matrices, each then turned into a rotation vector (cv2.Rodrigues there)."""
    vposer, _ = load_vposer("gan-s")
    z = torch.randn(3, 32, generator=_gen())
    for i in range(3):
        mats = vposer.decode(z[i]).reshape(-1, 3, 3)
        assert mats.shape == (21, 3, 3) and _is_rotation(mats)
        assert torch.equal(mats, vposer.decode(z[i : i + 1]).reshape(-1, 3, 3))


def test_v1_forward_then_view_rotation_matrices() -> None:
    """A project running v1's autoencoder on axis-angle poses and reading ``["pose"]`` back:
    ``vposer(pose_body.reshape(N, -1))["pose"].view(-1, 3, 3)`` (v1.1's forward returns
    ``{"pose", "mean", "std"}``, matrot by default)."""
    vposer, _ = load_vposer("vae")
    pose_body = vposer.sample_poses(5, seed=1)
    out = vposer(pose_body.reshape(5, -1))
    mats = out["pose"].view(-1, 3, 3)
    assert mats.shape == (105, 3, 3) and _is_rotation(mats)
    assert out["mean"].shape == out["std"].shape == (5, 32)


@pytest.mark.parametrize("alias", ["vae", "gan-s"])
def test_v1_forward_keys_of_the_last_v1_release(alias: str) -> None:
    """human_body_prior's last v1 release (train/vposer_smpl.py, its trainer and
    ``vis_results``) names the decoded pose by its type: ``vposer(pose, output_type='aa')``
    returns ``{'mean', 'std', 'pose_aa'}`` (``'pose_matrot'`` for matrot), read as
    ``drec['pose_aa'].view(bs, -1)``; its poses come as ``(B, 1, 21, 3)`` (``data_shape``
    ``[1, 21, 3]``) and its loss rebuilds ``Normal(drec['mean'], drec['std'])``. v1.0 code
    reads ``['pose']``: both keys must be there."""
    vposer, ps = load_vposer(alias)
    bs = 4
    dorig_aa = vposer.sample_poses(bs, seed=3)  # (B, 1, 21, 3), v1's data_shape
    assert list(dorig_aa.shape[1:]) == ps.data_shape
    drec = vposer(dorig_aa, output_type="aa")
    prec_aa = drec["pose_aa"].view(bs, -1)
    assert prec_aa.shape == (bs, 63)
    mean = vposer.encode(dorig_aa).mean
    assert torch.equal(drec["mean"], mean) and torch.equal(drec["pose"], drec["pose_aa"])
    assert torch.equal(drec["pose_aa"], vposer.decode(mean, output_type="aa"))
    matrot = vposer(dorig_aa.reshape(bs, 63), input_type="aa", output_type="matrot")
    assert "pose_aa" not in matrot and matrot["pose_matrot"].shape == (bs, 1, 21, 9)
    # the same decoded poses in both forms (axis-angle round trip of float32 rotations)
    back = vposer.aa2matrot(drec["pose_aa"])
    assert torch.allclose(back, matrot["pose_matrot"], atol=1e-5)
    if alias == "vae":  # a GAN's point estimate has std 0, which Normal's check refuses
        q_z = torch.distributions.Normal(drec["mean"], drec["std"])
        assert q_z.mean.shape == (bs, ps.latentD)
    # its trainer wraps the model in DataParallel (use_multigpu) and vis_results reaches
    # sample_poses through .module
    wrapped = torch.nn.DataParallel(vposer)
    assert torch.equal(wrapped(dorig_aa, output_type="aa")["pose_aa"], drec["pose_aa"])
    module = wrapped.module if hasattr(wrapped, "module") else wrapped
    assert module.sample_poses(num_poses=bs, output_type="aa").view(bs, -1).shape == (bs, 63)


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_v1_device_and_dtype_from_the_first_decoder_layer(alias: str) -> None:
    """v1's ``sample_poses`` and fitters built on v1 (an EasyMocap-based keypoint fitter) take
    the device and dtype of their tensors from ``vposer.bodyprior_dec_fc1.weight``, then start
    ``z = zeros(1, vposer.latentD, device=device)``: the layer must exist, take the latent and
    follow the module's ``.to()``; the fit's gradient still flows to ``z`` only."""
    vposer, _ = load_vposer(alias)
    layer = vposer.bodyprior_dec_fc1
    assert isinstance(layer, torch.nn.Linear) and layer.in_features == vposer.latentD
    assert not layer.weight.requires_grad  # the frozen prior's own layer
    vposer = vposer.to(dtype=torch.float64)
    weight = vposer.bodyprior_dec_fc1.weight
    assert weight.dtype == torch.float64 and weight.device == next(vposer.parameters()).device
    z = torch.zeros(1, vposer.latentD, device=weight.device, dtype=weight.dtype)
    z.requires_grad_(True)
    target = vposer.sample_poses(1, seed=2).reshape(1, 63).to(weight.dtype)
    loss = (vposer.decode(z, output_type="aa").reshape(1, 63) - target).pow(2).sum()
    loss.backward()
    assert z.grad.abs().sum() > 0 and weight.grad is None
    # v2's VPoser has no such layer: code telling the versions apart by it still can
    assert not hasattr(load_model(alias)[0], "bodyprior_dec_fc1")


def test_v1_static_rotation_helpers() -> None:
    """v1's ``VPoser.matrot2aa`` / ``VPoser.aa2matrot`` (Nx1xJx9 <-> Nx1xJx3), called on the
    loaded instance by downstream code (``self.vposer.matrot2aa(x_9d)[:, 0]``, a motion model
    mapping rotation features to VPoser's layout)."""
    vposer, _ = load_vposer("gan-s")
    mats = vposer.decode(torch.randn(4, 32, generator=_gen()))
    aa = vposer.matrot2aa(mats)
    assert aa.shape == (4, 1, 21, 3)
    assert torch.allclose(aa, vposer.decode(torch.randn(4, 32, generator=_gen()), "aa"))
    back = vposer.aa2matrot(aa)
    # axis-angle round trip of float32 rotations: a few eps of the entries
    assert back.shape == (4, 1, 21, 9) and torch.allclose(back, mats, atol=1e-5)
    # the class-level call, and a flat N x J*9 input as v1's view(-1, 3, 3) takes it
    assert type(vposer).matrot2aa(mats.reshape(4, -1)).shape == (4, 1, 21, 3)
    assert vposer.aa2matrot(torch.zeros(0, 1, 21, 3)).shape == (0, 1, 21, 9)
    with pytest.raises(ValueError, match=r"\(N, 1, J, 9\)"):
        vposer.matrot2aa(torch.zeros(4, 10))


# --- human_body_prior v2: IK engine, tutorials, the loader's example -----------------------


def test_v2_loader_signature() -> None:
    """human_body_prior's src/human_body_prior/tools/model_loader.py: ``load_model(expr_dir,
    model_code=None, remove_words_in_model_weights=None, load_only_cfg=False,
    disable_grad=True, model_cfg_override=None, comp_device='gpu')``. Projects pass
    ``comp_device='cpu'`` (then ``[0].to('cpu').eval()``) and SOMA passes
    ``model_cfg_override={'dirs.work_base_dir': ...}`` (dotted keys, merged into the config)."""
    vp = load_model(
        "gan-s",
        model_code=object,
        remove_words_in_model_weights="vp_model.",
        disable_grad=True,
        comp_device="cpu",
    )[0].to("cpu")
    assert vp.eval() is vp
    vp, cfg = load_model(
        "gan-s",
        model_code=object,
        remove_words_in_model_weights="vp_model.",
        model_cfg_override={"dirs.work_base_dir": "/tmp/w", "model_params.latentD": 32},
    )
    assert cfg.dirs.work_base_dir == "/tmp/w" and cfg.model_params.latentD == 32
    # positional, in v2's order: the sixth is model_cfg_override
    cfg = load_model("gan-s", None, None, True, True, {"a.b": 1})
    assert cfg.a.b == 1 and cfg.latentD == 32
    with pytest.raises(ValueError, match="cannot change 'model_params.latentD'"):
        load_model("gan-s", model_cfg_override={"model_params.latentD": 16})
    with pytest.raises(TypeError, match="model_cfg_override"):
        load_model("gan-s", model_cfg_override=["dirs.x=1"])
    # v2 loads on the CPU when the machine has no GPU, whatever comp_device says
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for device in ("gpu", "cuda", torch.device("cuda")):
        vp, _ = load_model("gan-s", comp_device=device)
        assert next(vp.parameters()).device.type == expected


def test_v2_ik_engine_pattern() -> None:
    """src/human_body_prior/models/ik_engine.py: the start is ``vp.encode(zeros(bs, 63)).mean``
    made an ``nn.Parameter``; the closure decodes ``['pose_body'].contiguous().view(-1, 63)``,
    masks NaN rows with ``torch.isnan(z).sum(-1) == 0`` and adds ``poZ_body.pow(2).sum()``."""
    vp, _ = load_model(
        "gan-s", model_code=object, remove_words_in_model_weights="vp_model.", disable_grad=True
    )
    bs = 2
    with torch.no_grad():
        start = vp.encode(torch.zeros([bs, 63])).mean
    assert start.shape == (bs, 32) and torch.isfinite(start).all()
    z = torch.nn.Parameter(start.detach(), requires_grad=True)
    target = vp.sample_poses(bs, seed=5)["pose_body"].reshape(bs, 63)
    optimizer = torch.optim.Adam([z], lr=0.05)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        pose = vp.decode(z)["pose_body"].contiguous().view(-1, 63)
        nonan = torch.isnan(z).sum(-1) == 0
        loss = torch.nn.functional.smooth_l1_loss(pose, target) + 0.01 * z[nonan].pow(2).sum()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    # a NaN row (a diverged frame) is masked out, the others stay finite
    bad = z.detach().clone()
    bad[1, 0] = float("nan")
    out = vp.decode(bad)["pose_body"].contiguous().view(-1, 63)
    assert torch.isfinite(out[0]).all() and torch.isnan(out[1]).any()
    assert (torch.isnan(bad).sum(-1) == 0).tolist() == [True, False]


def test_v2_tutorial_and_loader_example() -> None:
    """v2 tutorial: ``vp.sample_poses(num_poses=n)['pose_body'].contiguous().view(n, -1)``;
    model_loader.py's example: AMASS poses (float64 from numpy) ``.type(torch.float)``, their
    ``encode(...).mean`` decoded back ``['pose_body'].contiguous().view(-1, 63)``."""
    vp, ps = load_model("vae", remove_words_in_model_weights="vp_model.", disable_grad=True)
    sampled = vp.sample_poses(num_poses=9)["pose_body"].contiguous().view(9, -1)
    assert sampled.shape == (9, 63)
    amass = np.asarray(sampled.double().numpy())  # as np.load(...)['poses'][:, 3:66] gives
    pose = torch.from_numpy(amass).type(torch.float)
    z = vp.encode(pose).mean
    rec = vp.decode(z)["pose_body"].contiguous().view(-1, 63)
    assert z.shape == (9, ps.model_params.latentD) and rec.shape == (9, 63)


def test_smplifyx_migrated_to_v2_as_its_maintainers_advise() -> None:
    """vchoutas/smplify-x issue 144: human_body_prior's author told SMPLify-X users to swap
    ``load_vposer`` for ``load_model(vposer_ckpt, model_code=VPoser,
    remove_words_in_model_weights='vp_model.', disable_grad=True)`` and the closure's decode
    for ``(vposer.decode(pose_embedding).get('pose_body')).reshape(1, -1)``; the rest of the
    fit (a ``(1, 32)`` leaf, ``fill_(0)`` per orientation, SMPL's six wrist zeros, the
    ``|z|^2`` term) is unchanged."""
    vposer, _ = load_model(
        "gan-s", model_code=object, remove_words_in_model_weights="vp_model.", disable_grad=True
    )
    vposer = vposer.to(device="cpu")
    vposer.eval()
    pose_embedding = torch.zeros([1, 32], requires_grad=True)
    target = vposer.sample_poses(1, seed=9)["pose_body"].reshape(1, 63)
    for _orientation in range(2):
        with torch.no_grad():
            pose_embedding.fill_(0)
        optimizer = torch.optim.LBFGS([pose_embedding], max_iter=10, line_search_fn="strong_wolfe")

        def closure(optimizer: torch.optim.Optimizer = optimizer) -> torch.Tensor:
            optimizer.zero_grad()
            body_pose = (vposer.decode(pose_embedding).get("pose_body")).reshape(1, -1)
            body_pose = torch.cat([body_pose, torch.zeros([1, 6])], dim=1)
            loss = (body_pose[:, :63] - target).pow(2).sum() + 1e-3 * pose_embedding.pow(2).sum()
            loss.backward()
            return loss

        first = float(closure().detach())
        optimizer.step(closure)
        assert float(closure().detach()) < 0.5 * first


def test_text_to_pose_optimises_a_one_dimensional_code() -> None:
    """Text-to-pose optimisers (a CLIP-guided pose search): the code is
    ``nn.Parameter(torch.randn(32))``, one dimension, moved ``.to(device).unsqueeze(0)`` every
    step, decoded ``['pose_body'].contiguous().view(-1)`` into a ``(63,)`` pose scored by a
    cosine similarity. The gradient must reach the 1-d parameter; a ``randn`` start is the
    chart's own prior, so the start is a plausible pose."""
    vp, _ = load_model("gan-s", model_code=object, remove_words_in_model_weights="vp_model.")
    latent_code = torch.nn.Parameter(torch.randn(32, generator=_gen()))
    feature = vp.sample_poses(1, seed=4)["pose_body"].reshape(63)
    optimizer = torch.optim.Adam([latent_code], lr=0.05)
    losses = []
    for _ in range(40):
        new_pose = vp.decode(latent_code.to("cpu").unsqueeze(0))["pose_body"]
        new_pose = new_pose.contiguous().view(-1)
        assert new_pose.shape == (63,)
        loss = 1 - torch.nn.functional.cosine_similarity(new_pose, feature, dim=-1)
        optimizer.zero_grad()
        loss.backward()
        assert latent_code.grad.shape == (32,) and latent_code.grad.abs().sum() > 0
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_v2_decode_keeps_the_first_dimension_as_v2() -> None:
    """v2's decode reshapes with ``bs = Zin.shape[0]``: a ``(B, T, 32)`` latent sequence gives
    ``(B, T * 21, 3)``, each sequence's joints stacked, which ``.reshape(B, T, 63)`` turns into
    per-frame poses; code indexing ``out['pose_body'][b]`` gets sequence ``b``."""
    vp, _ = load_model("gan-s")
    z = torch.randn(2, 5, 32, generator=_gen())
    out = vp.decode(z)
    assert out["pose_body"].shape == (2, 105, 3) and out["pose_body_matrot"].shape == (2, 105, 9)
    frames = vp.decode(z.reshape(10, 32))["pose_body"].reshape(2, 5, 63)
    assert torch.equal(out["pose_body"].reshape(2, 5, 63), frames)
    assert vp.decode(z[0, 0])["pose_body"].shape == (1, 21, 3)
    assert vp.decode(torch.zeros(0, 32))["pose_body"].shape == (0, 21, 3)


def test_place_decodes_a_slice_of_a_parameter_vector() -> None:
    """sanweiliti/PLACE test_optimize.py: the embedding is columns ``16:48`` of one ``(1, 72)``
    parameter vector started from ``torch.randn`` (so ``z ~ N(0, I)``, the chart's prior),
    decoded ``output_type='aa'`` then ``.view(1, -1)``; the VPoser term is
    ``torch.mean(vposer_pose ** 2)``; Adam steps with ``loss.backward(retain_graph=True)``."""
    vposer_model, _ = load_vposer("gan-s", vp_model="snapshot")
    params = torch.randn(1, 72, generator=_gen()).requires_grad_(True)
    target = vposer_model.sample_poses(1, seed=8).reshape(1, 63)
    optimizer = torch.optim.Adam([params], lr=0.1)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        body_pose_joint = vposer_model.decode(params[:, 16:48], output_type="aa").view(1, -1)
        loss = (body_pose_joint - target).abs().mean() + 1e-3 * torch.mean(params[:, 16:48] ** 2)
        loss.backward(retain_graph=True)
        # only the embedding's columns get a gradient through the decoder
        assert params.grad[:, 16:48].abs().sum() > 0 and not params.grad[:, :16].any()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


# --- HuMoR / SLAHMR: VPoser v1 over a batch of sequences -------------------------------------


def test_humor_slahmr_latent_sequence_pattern() -> None:
    """davrempe/humor humor/fitting/motion_optimizer.py and vye16/slahmr
    slahmr/optim/base_scene.py: ``pose_prior.latentD`` sizes a ``(B, T, D)`` latent that
    starts at zero; ``latent2pose`` decodes ``reshape(-1, D)`` with ``output_type='matrot'``
    and converts ``reshape(B * T * 21, 3, 3)`` to axis-angle ``(B, T, 63)``; ``pose2latent``
    encodes ``reshape(-1, 63)`` and takes ``.mean.reshape(B, T, D)``; the stages run
    ``torch.optim.LBFGS(..., line_search_fn='strong_wolfe')`` on the latent."""
    pose_prior, _ = load_vposer("gan-s")
    pose_prior = pose_prior.to("cpu")
    pose_prior.eval()
    B, T, D = 1, 3, pose_prior.latentD  # noqa: N806

    def latent2pose(latent: torch.Tensor) -> torch.Tensor:
        mats = pose_prior.decode(latent.reshape((-1, D)), output_type="matrot")
        # they convert with their own rotation_matrix_to_angle_axis
        return rotmat_to_axis_angle(mats.reshape((B * T * 21, 3, 3))).reshape((B, T, 63))

    def pose2latent(body_pose: torch.Tensor) -> torch.Tensor:
        return pose_prior.encode(body_pose.reshape((-1, 63))).mean.reshape((B, T, D))

    target = pose_prior.sample_poses(B * T, seed=2).reshape(B, T, 63)
    latent = torch.zeros((B, T, D)).requires_grad_(True)
    optimizer = torch.optim.LBFGS([latent], max_iter=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (latent2pose(latent) - target).pow(2).sum() + 1e-3 * latent.pow(2).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        before = float((latent2pose(latent) - target).pow(2).sum())
    for _ in range(3):
        optimizer.step(closure)
    with torch.no_grad():
        after = float((latent2pose(latent) - target).pow(2).sum())
    assert after < 0.5 * before and torch.isfinite(latent).all()
    # re-encoding the fitted poses gives latents of the same poses
    relatent = pose2latent(latent2pose(latent).detach())
    assert relatent.shape == (B, T, D)


# --- EasyMocap: VPoser v2 as a body-model layer and as a loss --------------------------------


def test_easymocap_embedding_layer_and_prior_loss() -> None:
    """zju3dv/EasyMocap easymocap/bodymodel/smpl.py (``SMPLLayerEmbedding``): ``vposer.to(dev)``
    without reassigning, ``encode(poses[:, :63]).mean`` stored as numpy ``poses``,
    ``decode(poses)['pose_body'].reshape(N, -1)`` when ``poses`` has 32 columns; and
    easymocap/multistage/lossbase.py (``VPoserPrior``): ``latent = encode(poses)``, then
    ``decode(latent.sample())['pose_body']`` compared with the poses as a loss."""
    vposer, _ = load_model("gan-s", remove_words_in_model_weights="vp_model.", disable_grad=True)
    vposer.eval()
    vposer.to("cpu")  # nn.Module.to moves in place; the return value is ignored there
    smpl_poses = torch.cat([vposer.sample_poses(2, seed=4)["pose_body"].reshape(2, 63)] * 1)
    smpl_poses = torch.cat([smpl_poses, torch.zeros(2, 6)], dim=1)  # SMPL's 69 (hands at rest)
    embedded = vposer.encode(smpl_poses[:, :63]).mean.detach().cpu().numpy()
    assert embedded.shape == (2, 32)
    decoded = vposer.decode(torch.Tensor(embedded))["pose_body"].reshape(2, -1)
    assert decoded.shape == (2, 63)
    # the GAN's inversion of its own samples lands back on them (radians; 0.05 as in
    # test_compat's round trip)
    assert (decoded - smpl_poses[:, :63]).abs().mean() < 0.05

    poses = smpl_poses[:, :63].clone().requires_grad_(True)
    with pytest.warns(UserWarning, match="no gradient to the pose"):
        latent = vposer.encode(poses)
    ret = vposer.decode(latent.sample())["pose_body"].reshape(2, 63)
    loss = (poses - ret).pow(2).sum()
    loss.backward()  # the reconstruction loss still gets its gradient through the poses
    assert poses.grad is not None and torch.isfinite(poses.grad).all()


def test_encoder_gradient_needs_the_vae() -> None:
    """A project scoring per-joint implausibility: ``z = m.encode(x).mean`` of poses with
    ``requires_grad``, ``(z ** 2).sum(-1).sum().backward()``, then ``x.grad``. VPoser's encoder
    is a network: the VAE's is too; a GAN's encode is an optimisation with no gradient (a
    warning says so, the backward finds nothing to differentiate). docs/compat.md says to load
    ``"vae"`` for encoder-gradient patterns."""
    m = load_model("vae", comp_device="cpu")[0].to("cpu").eval()
    x = m.sample_poses(3, seed=0)["pose_body"].reshape(3, 63).clone().requires_grad_(True)
    nll = m.encode(x).mean.pow(2).sum(-1)
    nll.sum().backward()
    g = x.grad.view(3, 21, 3).norm(dim=-1)
    assert g.shape == (3, 21) and torch.isfinite(g).all() and g.abs().sum() > 0

    gan = load_model("gan-s")[0]
    x = x.detach().clone().requires_grad_(True)
    with pytest.warns(UserWarning, match="no gradient"):
        z = gan.encode(x).mean
    assert not z.requires_grad


# --- What any of these pipelines may pass ----------------------------------------------------


def test_smpl_body_pose_of_69_encodes_as_its_63() -> None:
    """SMPL pipelines (SPIN/PARE-style SMPLify) hold a ``(B, 69)`` ``body_pose`` with the two
    hand joints; advprior's priors take it everywhere (hands dropped), and so does ``encode``."""
    for alias in ("vae", "gan-s"):
        vposer, _ = load_vposer(alias)
        pose = vposer.sample_poses(2, seed=6).reshape(2, 63)
        smpl = torch.cat([pose, 0.1 * torch.ones(2, 6)], dim=1)
        assert torch.equal(vposer.encode(smpl).mean, vposer.encode(pose).mean)
        assert vposer.encode(smpl.reshape(2, 1, 23, 3)).mean.shape == (2, 32)
    with pytest.raises(ValueError, match=r"B x 63 .*SMPL's B x 69.*\(2, 72\)"):
        vposer.encode(torch.zeros(2, 72))


@pytest.mark.parametrize("alias", ["gan-s", "gan-u", "vae"])
def test_batch_of_one_dtypes_and_output_types(alias: str) -> None:
    """Batch 1 (SMPLify-X asserts it), ``(B, 32)`` vs ``(32,)``, float64 and float32, both
    ``output_type`` values, positional or keyword, and what a wrong size says."""
    vposer, _ = load_vposer(alias)
    z = torch.randn(1, 32, generator=_gen())
    for output_type, last in (("aa", 3), ("matrot", 9)):
        batch = vposer.decode(z, output_type=output_type)
        assert batch.shape == (1, 1, 21, last)
        assert torch.equal(vposer.decode(z[0], output_type), batch)
        z64 = vposer.decode(z.double(), output_type=output_type)
        # float64 in, float64 out, computed in the prior's float32 (~1e-6 apart)
        assert z64.dtype == torch.float64 and torch.allclose(z64, batch.double(), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 32\), got \(1, 31\)"):
        vposer.decode(torch.zeros(1, 31))
    with pytest.raises(ValueError, match="body pose: encode"):
        vposer.decode(torch.zeros(1, 63))
    with pytest.raises(ValueError, match="output_type"):
        vposer.decode(z, output_type="rot6d")


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_device_and_dtype_follow_the_module_and_the_input(alias: str) -> None:
    """``vposer.to(device)`` / ``.to(dtype=...)`` as pipelines call them: every decode and
    sample runs where the module is (meta tensors stand for CUDA: a CPU constant inside would
    raise), answers in the input's dtype, and a float64 module decodes a saved float32 ``z`` to
    the same pose as the float32 module (the chart's centre does not depend on the dtype)."""
    meta, _ = load_vposer(alias)
    meta.to("meta")
    z = torch.zeros(2, 32, device="meta")
    assert meta.decode(z, output_type="aa").device.type == "meta"
    assert meta.decode(z.double()).dtype == torch.float64
    assert meta.sample_poses(3, seed=0).device.type == "meta"
    v2, _ = load_model(alias, comp_device="cpu")
    assert v2.to("meta").decode(z)["pose_body"].device.type == "meta"

    f32, _ = load_vposer(alias)
    f64, _ = load_vposer(alias)
    f64 = f64.to(dtype=torch.float64)
    zz = torch.randn(3, 32, generator=_gen())
    a = f32.decode(zz, "aa")
    b = f64.decode(zz, "aa")
    # the same network in float32 and float64: float32 rounding through the MLP (~1e-6 rad)
    assert b.dtype == torch.float32 and torch.allclose(a, b, atol=1e-5)
    # a VAE-backed adapter put in train mode still encodes a batch of one (VPoser's BatchNorm
    # would not): the frozen prior runs in eval mode
    f32.train()
    assert f32.encode(a[:1].reshape(1, 63)).mean.shape == (1, 32)


# --- SMPLify's GMM: gmm_08.pkl as SMPLify-X, SPIN and EasyMocap read it ----------------------


def _load_like_smplify(folder: Path, num_gaussians: int, dtype: torch.dtype) -> dict:
    """What ``MaxMixturePrior(prior_folder=folder, num_gaussians=8, dtype=...)`` builds
    (vchoutas/smplify-x smplifyx/prior.py; nkolot/SPIN smplify/prior.py is the same), written
    from its description: ``gmm_{:02d}.pkl`` by name, a latin-1 pickle of a plain dict, numpy
    casts to the run's dtype, float64 normalisers cast to ``dtype`` afterwards."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    with open(folder / f"gmm_{num_gaussians:02d}.pkl", "rb") as fh:
        gmm = pickle.load(fh, encoding="latin1")
    assert type(gmm) is dict
    covs = gmm["covars"].astype(np_dtype)
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in gmm["covars"]])
    const = (2 * np.pi) ** (69 / 2.0)
    nll_weights = np.asarray(gmm["weights"] / (const * (sqrdets / sqrdets.min())))
    return {
        "means": torch.tensor(gmm["means"].astype(np_dtype), dtype=dtype),
        "covs": torch.tensor(covs, dtype=dtype),
        "precisions": torch.tensor(np.stack([np.linalg.inv(c) for c in covs]), dtype=dtype),
        "nll_weights": torch.tensor(nll_weights, dtype=dtype)[None],
        "weights": torch.tensor(gmm["weights"], dtype=dtype)[None],
        "neg_log_nll_weights": torch.tensor(-np.log(nll_weights[None]), dtype=dtype),
        "cov_dets": torch.tensor([np.log(np.linalg.det(c) + 1e-16) for c in covs], dtype=dtype),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gmm_export_in_smplify_max_mixture_prior(tmp_path: Path, dtype: torch.dtype) -> None:
    """Both of SMPLify's energies on our export, in float32 and float64 runs: the merged one
    (``0.5 d^T P d - log nll_weights``, min over components) and the per-component one
    (``use_merged=False``: ``d^T P d + 0.5 (log(det(cov) + eps) + 69 log 2 pi)``, torch's det,
    whose float32 determinant underflows to 0 for 69 dimensions: ``eps`` keeps it finite); its
    ``get_mean()`` (``weights @ means``, the start pose of a fit without VPoser); EasyMocap's
    variant (easymocap/multistage/gmm.py: ``-log(nll_weights)`` taken in float64 first)."""
    gmm = load_pretrained("gmm")
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    prior = _load_like_smplify(tmp_path, 8, dtype)
    mean_pose = prior["weights"] @ prior["means"]
    assert mean_pose.shape == (1, 69) and not mean_pose[0, 63:].any()
    assert torch.isfinite(prior["cov_dets"]).all() and torch.isfinite(prior["precisions"]).all()

    pose = torch.cat(
        [gmm.sample(16, generator=_gen()).to(dtype), torch.zeros(16, 6, dtype=dtype)], 1
    )
    pose.requires_grad_(True)
    diff = pose[:, None] - prior["means"]
    quad = torch.einsum("mij,bmj->bmi", prior["precisions"], diff).mul(diff).sum(-1)
    merged = (0.5 * quad - torch.log(prior["nll_weights"])).min(dim=1).values
    easymocap = (0.5 * quad + prior["neg_log_nll_weights"]).min(dim=1).values
    cov_term = torch.log(torch.det(prior["covs"]) + 1e-16)
    # SMPLify's per-component energy adds the quadratic form unhalved
    per_component = quad + 0.5 * (cov_term + 69 * math.log(2 * math.pi))
    picked = per_component.argmin(dim=1)
    unmerged = -torch.log(prior["nll_weights"][0, picked]) + per_component.gather(
        1, picked[:, None]
    ).squeeze(1)
    for energy in (merged, easymocap, unmerged):
        assert torch.isfinite(energy).all()
        (grad,) = torch.autograd.grad(energy.sum(), pose, retain_graph=True)
        assert torch.isfinite(grad).all()
    # the two spellings of the merged energy agree (float32: the constant near 60 rounds at
    # 4e-6; the quadratic terms are the same tensors)
    assert torch.allclose(merged, easymocap, rtol=1e-5, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow/invalid-value warning while loading
        _load_like_smplify(tmp_path, 8, dtype)


@pytest.mark.parametrize("exclude_hands", [False, True])
def test_gmm_export_in_moshpp_body_prior(tmp_path: Path, exclude_hands: bool) -> None:
    """nghorbani/moshpp src/moshpp/prior/gmm_prior_ch.py (``create_gmm_body_prior``): reads the
    pickle with ``encoding='latin-1'``, slices the first 63 dimensions for SMPL-H/SMPL-X bodies
    (``exclude_hands=True``), takes Cholesky factors of the precisions, normalises the weights
    with ``(2 pi)^(npose / 2)`` and uses ``sqrt(-log(w))`` of the chosen component as a
    residual; a SMPLify-X copy for SMPL-X does the same slicing with ``model_type='smplx'``."""
    load_pretrained("gmm").export_smplify(tmp_path / "gmm_08.pkl")
    with open(tmp_path / "gmm_08.pkl", "rb") as fh:
        gmm = pickle.load(fh, encoding="latin-1")
    npose = 63 if exclude_hands else 69
    covars = gmm["covars"][:, :npose, :npose]
    means = gmm["means"][:, :npose]
    precs = np.stack([np.linalg.inv(c) for c in covars])
    chols = np.stack([np.linalg.cholesky(p) for p in precs])  # raises unless positive definite
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in covars])
    weights = gmm["weights"] / ((2 * np.pi) ** (npose / 2.0) * (sqrdets / sqrdets.min()))
    assert ((weights > 0) & (weights < 1)).all()
    x = load_pretrained("gmm").sample(4, generator=_gen()).double().numpy()
    x = np.concatenate([x, np.zeros((4, 6))], 1)[:, :npose]
    for pose in x:
        residuals = [np.sqrt(0.5) * (pose - m) @ c for m, c in zip(means, chols, strict=True)]
        k = int(
            np.argmin([(r**2).sum() - np.log(w) for r, w in zip(residuals, weights, strict=True)])
        )
        full = np.concatenate([residuals[k], [np.sqrt(-np.log(weights[k]))]])
        assert np.isfinite(full).all()


def test_gmm_export_read_with_bytes_keys_as_scan_fitting_code_does(tmp_path: Path) -> None:
    """Scan and multi-view fitting code derived from ICON / PaMIR (a ``MaxMixturePosePrior``
    with ``n_gaussians=8, prefix=3``) opens SMPLify's ``gmm_08.pkl``, a Python 2 pickle, with
    ``pickle.load(f, encoding='bytes')`` and indexes ``gmm[b'covars']``, ``gmm[b'means']``,
    ``gmm[b'weights']``; its energy is ``|sqrt(1/2) d L|^2 - log w`` over the 69 numbers after
    the global orientation of a ``(B, 72)`` pose, ``L`` the Cholesky factor of each precision,
    the smallest over components. Our export was a Python 3 pickle whose ``str`` keys stay
    ``str`` under ``encoding='bytes'``: ``KeyError: b'covars'``."""
    gmm_prior = load_pretrained("gmm")
    gmm_prior.export_smplify(tmp_path / "gmm_08.pkl")
    with open(tmp_path / "gmm_08.pkl", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    assert set(raw) == {b"means", b"covars", b"weights"}
    precs = np.stack([np.linalg.cholesky(np.linalg.inv(c)) for c in raw[b"covars"]])
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in raw[b"covars"]])
    weights = raw[b"weights"] / ((2 * np.pi) ** (69 / 2.0) * (sqrdets / sqrdets.min()))
    means = torch.from_numpy(np.asarray(raw[b"means"]))
    precs_t, weights_t = torch.from_numpy(precs), torch.from_numpy(weights)

    body = gmm_prior.sample(8, generator=_gen()).double()
    theta = torch.cat([torch.zeros(8, 3, dtype=torch.float64), body, torch.zeros(8, 6)], 1)
    d = (theta[:, 3:][:, None] - means[None])[:, :, None, :]  # (B, 8, 1, 69)
    r = math.sqrt(0.5) * (d @ precs_t).squeeze(2)
    energy = ((r * r).sum(-1) - weights_t.log()).min(dim=1).values
    assert torch.isfinite(energy).all()
    # the same file read as SMPLify-X reads it (latin-1, str keys) holds the same arrays
    with open(tmp_path / "gmm_08.pkl", "rb") as fh:
        latin = pickle.load(fh, encoding="latin1")
    assert type(latin) is dict and set(latin) == {"means", "covars", "weights"}
    for key in ("means", "covars", "weights"):
        assert np.array_equal(latin[key], raw[key.encode()])
