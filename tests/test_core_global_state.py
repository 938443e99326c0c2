"""advprior under the global torch state a user's program sets (inference mode, autocast, the
global RNG, the thread count), and advprior leaving that state as it found it."""

from __future__ import annotations

import contextlib

import pytest
import torch

from advprior import PosePrior, load_pretrained
from advprior.body import load_body_model
from advprior.fitting import PinholeCamera, fit_keypoints, fit_sequence

CAMERA = PinholeCamera(focal=(1000.0, 1000.0), center=(512.0, 512.0))


@pytest.fixture(scope="module")
def scene():
    """Two frames: ``(keypoints (2, 24, 2), confidence (2, 24), body_pose (2, 63))``."""
    pose = 0.2 * torch.randn(2, 63, generator=torch.Generator().manual_seed(0))
    transl = torch.tensor([[0.0, 0.2, 3.0]]).expand(2, 3)
    with torch.no_grad():
        out = load_body_model()(global_orient=torch.zeros(2, 3), body_pose=pose, transl=transl)
    return CAMERA.project(out.joints[:, :24]), torch.ones(2, 24), pose


def _optimising_calls(prior, body, scene):
    kp, conf, pose = scene
    z0, z1 = torch.nn.functional.normalize(
        torch.randn(2, 32, generator=torch.Generator().manual_seed(3)), dim=-1
    )
    return {
        "invert": lambda: prior.invert(pose, steps=3, bank_size=64),
        "project_pose": lambda: prior.project_pose(pose, steps=3, bank_size=64),
        "score": lambda: prior.score(pose, steps=3, bank_size=64),
        "geodesic": lambda: prior.interpolate(z0, z1, 4, geodesic=True, iterations=2),
        "fit_keypoints": lambda: (
            fit_keypoints(kp, conf, CAMERA, prior=prior, body_model=body, iterations=2).body_pose
        ),
        "fit_sequence": lambda: (
            fit_sequence(kp, conf, CAMERA, prior=prior, body_model=body, iterations=2).body_pose
        ),
    }


@pytest.mark.parametrize(
    "call", ["invert", "project_pose", "score", "geodesic", "fit_keypoints", "fit_sequence"]
)
@pytest.mark.parametrize("called_inside", [False, True])
def test_a_prior_and_body_loaded_inside_inference_mode_still_optimise(
    call: str, called_inside: bool, scene
) -> None:
    # A script wrapped whole in torch.inference_mode() (or a model loaded lazily in Lightning's
    # predict step) holds weights that are inference tensors; every optimising call failed on
    # them with torch's "Inference tensors cannot be saved for backward", even after the mode
    # had ended.
    prior, body = PosePrior.from_pretrained("gan-s"), load_body_model()
    with torch.inference_mode():
        prior_inf, body_inf = PosePrior.from_pretrained("gan-s"), load_body_model()
    assert all(p.is_inference() for p in prior_inf.parameters())
    expected = _optimising_calls(prior, body, scene)[call]()
    run = _optimising_calls(prior_inf, body_inf, scene)[call]
    if called_inside:
        with torch.inference_mode():
            got = run()
    else:
        got = run()
    # the same operations on the same values: bit for bit
    assert torch.equal(got, expected)
    # the caller's modules are left as they were (used through copies)
    assert all(p.is_inference() and not p.requires_grad for p in prior_inf.parameters())
    assert not prior_inf.training


def test_project_pose_ignores_the_callers_autocast(scene) -> None:
    # invert ran in full precision under autocast, but project_pose's final decode did not: a
    # bfloat16 pose off the float32 one by up to ~1e-2 rad (bfloat16's eps is 7.8e-3)
    prior = PosePrior.from_pretrained("gan-s")
    pose = scene[2]
    expected = prior.project_pose(pose, steps=3, bank_size=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = prior.project_pose(pose, steps=3, bank_size=64)
    assert got.dtype == expected.dtype == torch.float32
    assert torch.equal(got, expected)


@pytest.mark.parametrize("alias", ["gan-s", "gan-n", "vae", "gmm"])
def test_loading_a_checkpoint_leaves_the_global_rng_alone(alias: str) -> None:
    # the constructor's random initialisation (overwritten by the checkpoint) drew from the
    # global RNG, so a user's torch.manual_seed(0); load; torch.randn(...) depended on which
    # checkpoint was loaded
    from advprior.compat import load_vposer

    torch.manual_seed(0)
    state = torch.get_rng_state()
    load_pretrained(alias)
    assert torch.equal(torch.get_rng_state(), state)
    if alias != "gmm":
        load_vposer(alias)
        assert torch.equal(torch.get_rng_state(), state)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["eval", "train"])
def test_the_command_line_called_from_python_restores_the_thread_count(
    command: str, tmp_path, one_thread
) -> None:
    # `--threads 2` used to stay in force in the calling process (a notebook, a test) after
    # main() returned; both commands fail here after setting it (bad --out, missing data)
    from advprior.cli import main

    (tmp_path / "file").write_text("x")
    missing = str(tmp_path / "missing.npz")
    argv = {
        "eval": ["eval", "--models", "gmm", "--data", missing, "--out", str(tmp_path / "file")],
        "train": ["train", "--data", missing, "--out", str(tmp_path / "run")],
    }[command]
    assert main([*argv, "--threads", "2"]) != 0
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_made_under_autocast_computes_in_float32(fmt: str, tmp_path) -> None:
    # traced inside the caller's torch.autocast, the file recorded bfloat16 casts: a
    # TorchScript decoder answering in bfloat16, ~1e-2 rad off, behind float32 metadata
    from advprior.export import export_prior

    if fmt == "onnx":
        pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    prior = PosePrior.from_pretrained("gan-s")
    z = prior.sample_latent(8, generator=torch.Generator().manual_seed(0))
    plain, mixed = tmp_path / f"plain.{fmt}", tmp_path / f"mixed.{fmt}"
    export_prior(prior, plain, format=fmt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        meta = export_prior(prior, mixed, format=fmt)
    assert meta["input"]["dtype"] == "float32"
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

        def decode(path):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    else:

        def decode(path):
            return torch.jit.load(str(path))(z)

    got = decode(mixed)
    assert got.dtype == torch.float32
    # the same graph traced twice: the same arithmetic, bit for bit
    assert torch.equal(got, decode(plain))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, write_dataset):
    """200 clustered random poses in the dataset layout (train / val / test splits)."""
    gen = torch.Generator().manual_seed(0)
    centres = 0.3 * torch.randn(4, 63, generator=gen)
    poses = centres[torch.randint(0, 4, (200,), generator=gen)]
    poses = poses + 0.05 * torch.randn(200, 63, generator=gen)
    split = (torch.arange(200) % 5).clamp(max=2).numpy()
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    return write_dataset(path, poses.numpy(), split)


def _set_default_float64():
    @contextlib.contextmanager
    def context():
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(torch.float32)

    return context()


@pytest.mark.parametrize("trainer", ["gan", "vae"])
@pytest.mark.parametrize("state", ["no_grad", "inference_mode", "default_float64"])
def test_training_ignores_the_callers_grad_mode_and_default_dtype(
    trainer: str, state: str, tiny_dataset, tmp_path
) -> None:
    # under no_grad / inference_mode training stopped at its first step ("element 0 of tensors
    # does not require grad"); under a float64 default dtype it trained in float64 and gave
    # other weights than the recorded settings and seed give
    from advprior.train import train_gan, train_vae

    fast = dict(steps=2, batch_size=16, val_every=0, ckpt_every=0, progress=False)
    fast.update(tensorboard=False, val_samples=50, max_val_poses=20)
    if trainer == "gan":
        run = lambda out: train_gan(tiny_dataset, out, d_steps=1, disc_hidden_dim=16, **fast)  # noqa: E731
    else:
        run = lambda out: train_vae(tiny_dataset, out, **fast)  # noqa: E731
    expected = load_pretrained(run(tmp_path / "plain").model_dir).state_dict()
    context = {
        "no_grad": torch.no_grad,
        "inference_mode": torch.inference_mode,
        "default_float64": _set_default_float64,
    }[state]
    with context():
        result = run(tmp_path / state)
        assert torch.get_default_dtype() == (
            torch.float64 if state == "default_float64" else torch.float32
        )
    got = load_pretrained(result.model_dir).state_dict()
    assert got.keys() == expected.keys()
    # the same float32 arithmetic from the same seed: bit for bit
    assert all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize("call", ["fit_keypoints", "fit_sequence"])
def test_fits_of_float32_keypoints_under_a_float64_default_dtype(scene, call) -> None:
    """A user's ``torch.set_default_dtype(torch.float64)`` with a detector's float32 keypoints:
    the torso-plane start once took the default dtype from a bool mask and crashed in a matmul
    ("expected m1 and m2 to have the same dtype"). The fit runs in the keypoints' dtype."""
    kp, conf, _ = scene
    prior, body = load_pretrained("gan-s"), load_body_model()
    kw = {"prior": prior, "body_model": body, "iterations": 2}
    if call == "fit_keypoints":
        fit = lambda: fit_keypoints(kp, conf, CAMERA, **kw).body_pose  # noqa: E731
    else:
        fit = lambda: fit_sequence(kp, conf, CAMERA, init_iterations=2, **kw).body_pose  # noqa: E731
    expected = fit()
    with _set_default_float64():
        got = fit()
    assert got.dtype == torch.float32
    # float32 either way, but constants made from Python numbers may round once in float64:
    # ~1e-6 rad after two L-BFGS iterations (more iterations amplify it chaotically)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
