"""Fitting, the regressor head and the amortised encoder run on the device and dtype of the prior
and data they are given.

The suite runs without a GPU, so the "other device" here is ``meta``: a real torch device with
shapes and dtypes but no data, which raises on a CPU operand exactly where CUDA would. Code that
reads a value (an optimiser's convergence test, a count) gets fixed stand-ins for it from
``_DataFreeScalars``; only where tensors live is under test there.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from advprior import LatentHead, PosePrior
from advprior.baselines import GMMPrior
from advprior.body import load_body_model
from advprior.fitting import PinholeCamera, fit_keypoints
from advprior.fitting.latent_density import VMFMixture
from advprior.inversion import PoseEncoder
from advprior.version import torch_version

META = torch.device("meta")
CAMERA = PinholeCamera(focal=1000, center=(512, 512))


_READS = ("item", "__float__", "__int__", "__index__", "__bool__", "tolist")


class _DataFreeScalars(TorchFunctionMode):
    """Python numbers read from meta tensors come back as fixed values, so code that reports a
    float or tests convergence runs through (the same stand-in as tests/test_eval_device.py).
    ``reads`` counts them: on a GPU each is a wait for the device."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        x = args[0] if args else None
        name = getattr(func, "__name__", "")
        if isinstance(x, torch.Tensor) and x.is_meta and name in _READS:
            self.reads += 1
            if name in ("item", "__float__"):
                return 0.0 if x.is_floating_point() else 1
            if name == "__int__":
                return 1
            if name == "__index__":  # a valid index into any list
                return 0
            if name == "__bool__":
                return True
            if name == "tolist":
                return torch.zeros(x.shape, dtype=x.dtype).tolist()
        return func(*args, **(kwargs or {}))


def _prior(latent: str = "normal") -> PosePrior:
    torch.manual_seed(0)
    return PosePrior(latent=latent).eval()


def _keypoints(n: int = 2) -> np.ndarray:
    """Detector-like keypoints (numpy, pixels) of ``n`` frames."""
    return np.random.default_rng(0).uniform(300, 700, (n, 24, 2)).astype(np.float32)


# -- LatentHead and PoseEncoder: their layers are built beside the prior ----------------------


@pytest.mark.parametrize("where", [{"device": "meta"}, {"dtype": torch.float64}])
def test_a_head_built_on_a_moved_prior_runs_there(where: dict) -> None:
    # from_pretrained(..., device="cuda") or a .double() prior: the head's layer was built on
    # the CPU in float32 and the first forward failed on mixed devices / dtypes
    prior = _prior("sphere").to(**where)
    for hidden in (None, 16):
        head = LatentHead(8, prior, hidden=hidden)
        assert {(p.device, p.dtype) for p in head.parameters()} == {(prior.device, prior.dtype)}
        pose = head(torch.randn(3, 8).to(prior.device, prior.dtype))
        assert (pose.device, pose.dtype, pose.shape) == (prior.device, prior.dtype, (3, 63))


def test_a_head_gets_the_same_initial_weights_whatever_the_priors_dtype() -> None:
    # built first, then moved: a seed gives the layer it gave before, rounded to the dtype
    torch.manual_seed(5)
    single = LatentHead(8, _prior()).net.weight.detach()
    torch.manual_seed(5)
    double = LatentHead(8, _prior().double()).net.weight.detach()
    assert double.dtype == torch.float64 and torch.equal(double.float(), single)


def test_an_encoder_trains_and_starts_an_inversion_on_the_priors_device_and_dtype() -> None:
    prior = _prior().to(META)
    encoder = PoseEncoder(prior)
    assert next(encoder.parameters()).device == META
    with _DataFreeScalars() as scalars:
        losses = encoder.fit(steps=5, batch_size=4)
    assert len(losses) == 5 and all(isinstance(v, float) for v in losses)
    # the losses are read once at the end: loss.item() at every step made a GPU wait for
    # each step before the next could be queued
    assert scalars.reads == 1
    double = _prior().double()
    encoder = PoseEncoder(double)
    encoder.fit(steps=2, batch_size=4)
    poses = double.sample(2, generator=torch.Generator().manual_seed(1))
    z = double.invert(poses, encoder=encoder, steps=1)
    assert z.dtype == torch.float64 and z.shape == (2, 32)


# -- the von Mises-Fisher latent density --------------------------------------------------


def test_latent_density_fits_where_the_latents_are() -> None:
    # a CPU generator drew the starts from GPU weights (torch.multinomial refuses that) and the
    # concentrations and weights were made on the CPU
    density = VMFMixture.fit(torch.empty(64, 32, device=META), components=4, iterations=2)
    assert {b.device for b in density.buffers()} == {META}
    assert density.nll(torch.empty(5, 32, device=META)).shape == (5,)


def test_latent_density_starts_are_those_of_a_weighted_draw_on_the_cpu() -> None:
    # the seeded k-means++ starts are unchanged: the same picks torch.multinomial made on the
    # CPU from the same stream (docs/fitting.md's density was fitted with those)
    z = torch.randn(300, 32, generator=torch.Generator().manual_seed(3))
    u = (z / z.norm(dim=-1, keepdim=True)).double()
    gen = torch.Generator().manual_seed(0)
    centres = [u[torch.randint(len(u), (1,), generator=gen)].squeeze(0)]
    for _ in range(7):
        dist = torch.stack([1 - u @ c for c in centres], 1).min(1).values.clamp(min=0)
        centres.append(u[torch.multinomial(dist + 1e-12, 1, generator=gen)].squeeze(0))
    starts = VMFMixture.fit(z, components=8, iterations=0).mu
    ones = torch.ones(8)
    assert torch.equal(starts, VMFMixture(torch.stack(centres).float(), ones, ones).mu)


# -- fit_keypoints / fit_sequence: the fit runs where the prior is --------------------------


def _on_meta(result) -> set[torch.device]:
    return {
        getattr(result, name).device
        for name in ("body_pose", "global_orient", "transl", "betas", "loss", "joints")
    }


@pytest.mark.parametrize("as_tensor", [False, True])
def test_detector_keypoints_fit_with_a_prior_on_another_device(as_tensor: bool) -> None:
    # numpy keypoints (or torch.from_numpy's CPU tensor) with the prior and body on a GPU: the
    # fit ran on the CPU and the prior's decoder met CPU latents. (fit_sequence places its
    # inputs by the same function, advprior.fitting.smplify.place_fit.)
    kp = _keypoints()
    keypoints = torch.from_numpy(kp) if as_tensor else kp
    with _DataFreeScalars():
        result = fit_keypoints(
            keypoints,
            None,
            CAMERA,
            body_model=load_body_model(device=META),
            prior=_prior().to(META),
            iterations=1,
            pixel_scale=1,
        )
    assert _on_meta(result) == {META}


def test_gpu_keypoints_fit_with_a_prior_given_by_name(monkeypatch) -> None:
    # prior="gan-n" and the default stand-in load on the CPU; with keypoints on a GPU the fit
    # ran there and decoded GPU latents through the CPU prior. The keypoint checks read values,
    # which meta tensors lack: they run on CPU copies here, the fit itself on meta.
    from advprior.fitting import smplify

    real = torch.from_numpy(_keypoints())
    check = smplify.prepare_keypoints

    def checked_on_cpu(keypoints, confidence, fmt, *args, **kwargs):
        kp, conf = check(real, None, fmt, *args, **kwargs)
        return kp.to(META), conf.to(META)

    monkeypatch.setattr(smplify, "prepare_keypoints", checked_on_cpu)
    with _DataFreeScalars():
        result = fit_keypoints(
            real.to(META), None, CAMERA, prior="gan-n", iterations=1, pixel_scale=1
        )
    assert _on_meta(result) == {META}


def test_a_latent_density_fitted_on_the_cpu_serves_a_fit_on_another_device() -> None:
    prior = _prior("sphere")
    density = VMFMixture.fit(prior.sample_latent(64), components=4, iterations=2)
    with _DataFreeScalars():
        result = fit_keypoints(
            _keypoints(),
            None,
            CAMERA,
            body_model=load_body_model(device=META),
            prior=prior.to(META),
            latent_density=density,
            pose_density=None,
            iterations=1,
            pixel_scale=1,
        )
    assert _on_meta(result) == {META}
    assert density.mu.device.type == "cpu"  # the caller's density is not moved


# -- Apple's MPS: no float64 --------------------------------------------------------------


class _NoFloat64OnMps(TorchDispatchMode):
    """Refuses float64 results on the mps device, as MPS does ("Cannot convert a MPS Tensor to
    float64 dtype", pytorch#122602). With FakeTensorMode, which makes "mps" tensors (shapes
    only) on any machine, it shows where float64 work would run on a Mac's GPU."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.device.type == "mps" and t.dtype == torch.float64:
                raise TypeError(f"{func}: Cannot convert a MPS Tensor to float64 dtype")
        return out


def _fake_mps(module: torch.nn.Module) -> torch.nn.Module:
    for name, buf in list(module.named_buffers()):
        setattr(module, name, torch.empty(buf.shape, dtype=buf.dtype, device="mps"))
    return module


@pytest.mark.skipif(
    torch_version() < (2, 2), reason="torch 2.1: FakeTensorMode cannot make mps tensors here"
)
def test_the_gmm_scores_and_samples_poses_on_mps() -> None:
    # GAN-S fits add the GMM's nll (their default pose density): its Cholesky factor was taken
    # in float64 on the model's device, which MPS refuses; it is taken on the CPU there
    with FakeTensorMode(allow_non_fake_inputs=True), _NoFloat64OnMps():
        gmm = _fake_mps(GMMPrior())
        poses = torch.empty(4, 63, device="mps")
        for out in (gmm.nll(poses), gmm.log_prob(poses)):
            assert (out.device.type, out.dtype, out.shape) == ("mps", torch.float32, (4,))
        drawn = gmm.sample(3, generator=torch.Generator().manual_seed(0))
        assert (drawn.device.type, drawn.shape) == ("mps", (3, 63))


@pytest.mark.skipif(
    torch_version() < (2, 2), reason="torch 2.1: FakeTensorMode cannot make mps tensors here"
)
def test_numpy_keypoints_are_fitted_in_float32_on_mps() -> None:
    # numpy keypoints are float64, which fits keep on the CPU and CUDA; MPS cannot hold them
    from advprior.fitting.smplify import place_fit

    detections = _keypoints().astype(np.float64)
    body = load_body_model()  # given: place_fit leaves it as it is
    with FakeTensorMode():
        prior = PosePrior()
        for layer in prior.generator:
            if isinstance(layer, torch.nn.Linear):
                layer.weight = torch.nn.Parameter(torch.empty(layer.weight.shape, device="mps"))
                layer.bias = torch.nn.Parameter(torch.empty(layer.bias.shape, device="mps"))
        kp64, conf64 = torch.empty(2, 24, 2, dtype=torch.float64), torch.ones(2, 24).double()
        kp, conf, model, _ = place_fit(detections, kp64, conf64, prior, body)
    assert model is prior
    assert (kp.device.type, kp.dtype, conf.dtype) == ("mps", torch.float32, torch.float32)
    cpu = place_fit(
        detections, torch.from_numpy(detections), torch.ones(2, 24).double(), _prior(), None
    )
    assert cpu[0].dtype == torch.float64 and cpu[2].device.type == "cpu"


# -- waits for the device inside a fit's objective ----------------------------------------


class _HostToDevice(TorchDispatchMode):
    """Counts copies of host data (more than one number) to the meta device: on a GPU each
    copy from ordinary host memory makes the stream wait."""

    def __init__(self) -> None:
        super().__init__()
        self.copies = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        made = out if isinstance(out, (tuple, list)) else (out,)
        if any(isinstance(t, torch.Tensor) and t.is_meta for t in made) and any(
            isinstance(a, torch.Tensor) and a.device.type == "cpu" and a.numel() > 1 for a in args
        ):
            self.copies += 1
        return out


def test_projection_and_kinematics_copy_nothing_from_the_host_once_warm() -> None:
    # a fit projects and runs the kinematic chain at every evaluation of its objective: the
    # camera's rotation, focal length and centre, and the chain's parent indices, were made
    # from host numbers at every call
    from advprior.body import forward_kinematics_rotmat

    camera = PinholeCamera(focal=(1000, 990), center=(512, 500), rotation=np.eye(3))
    points = torch.empty(4, 24, 3, device=META)
    rot, rest = torch.empty(4, 22, 3, 3, device=META), torch.empty(4, 24, 3, device=META)
    counts = []
    for _ in range(3):  # the first call makes what is kept per device
        with _HostToDevice() as counter:
            camera.project(points)
            camera.backproject(points[..., :2], points[..., 2])
            forward_kinematics_rotmat(rot, rest)
        counts.append(counter.copies)
    assert counts[1:] == [0, 0]
    cpu = torch.tensor([[0.5, 0.25, 2.0]])  # binary fractions: the pixels are exact
    assert torch.equal(camera.project(cpu), torch.tensor([[762.0, 623.75]]))
    camera.focal = (500.0, 500.0)  # reassigned: its tensors are made again
    assert torch.equal(camera.project(cpu), torch.tensor([[637.0, 562.5]]))
    camera.center = (10.0, 20.0)
    assert torch.equal(camera.project(cpu.double()), torch.tensor([[135.0, 82.5]]).double())


def test_surface_points_read_no_values_from_the_device() -> None:
    # smplx's kinematic chain reads parents[i] at each of SMPL's 23 joints: from the layer's
    # buffer on a GPU, 23 waits for the device per evaluation of a COCO / OpenPose fit
    body = load_body_model(device=META)
    with _DataFreeScalars() as scalars:
        points, joints = body.posed_points(
            torch.empty(4, 3, device=META), torch.empty(4, 63, device=META), [1, 2, 3]
        )
    assert scalars.reads == 0
    assert points.shape == (4, 3, 3) and joints.shape == (4, 24, 3)


class _HostIndices(TorchFunctionMode):
    """Counts meta tensors indexed by host data (a Python list, a CPU tensor of more than one
    number), and meta tensors made from Python numbers: on a GPU the data is copied to the
    device first, and the stream waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self.copies = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        device = (kwargs or {}).get("device")
        if (
            name in ("tensor", "as_tensor")
            and device is not None
            and not isinstance(args[0], torch.Tensor)
        ):
            self.copies += torch.device(device).type == "meta"
        if name == "__getitem__" and isinstance(args[0], torch.Tensor):
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            host = [
                i
                for i in index
                if isinstance(i, list) or (isinstance(i, torch.Tensor) and i.device.type == "cpu")
            ]
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if args[0].is_meta and host and not caller.startswith("smplx"):
                self.copies += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(
    torch_version() < (2, 2), reason="torch 2.1: its dispatch modes get tensor | bool unwrapped"
)
@pytest.mark.parametrize("keypoint_format", ["smpl24", "coco17"])
def test_a_fit_copies_no_indices_to_the_device_per_evaluation(keypoint_format: str) -> None:
    # the keypoints' joints (smpl24) or surface points and their order (COCO, OpenPose) were
    # Python lists, copied to the GPU at every evaluation of the objective
    count = 17 if keypoint_format == "coco17" else 24
    body, prior = load_body_model(device=META), _prior().to(META)
    copies = []
    for iterations in (1, 2, 4):  # the first makes what is kept per device
        with _DataFreeScalars(), _HostIndices() as indices, _HostToDevice() as moves:
            fit_keypoints(
                _keypoints()[:, :count],
                None,
                CAMERA,
                body_model=body,
                prior=prior,
                keypoint_format=keypoint_format,
                iterations=iterations,
                pixel_scale=1,
            )
        copies.append((indices.copies, moves.copies))
    # (smplx's own chain still indexes by SMPL's parents once per evaluation: they stay on the
    # CPU so that its 23 reads of single parents do not wait for the device, test above)
    assert copies[1] == copies[2]


def test_decoding_smpls_hand_joints_copies_nothing_once_warm() -> None:
    # body="smpl" appends identity rotations, made from Python numbers at every decode
    prior = _prior().to(META)
    z = torch.empty(4, 32, device=META)
    prior.decode(z, body="smpl")
    with _HostIndices() as host:
        for output in ("axis_angle", "rotmat"):
            assert prior.decode(z, output=output, body="smpl").shape[1] in (69, 23)
    assert host.copies == 0
