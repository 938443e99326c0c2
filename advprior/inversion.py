"""Pose -> latent: the latent whose decoded pose is closest to a given body pose.

Used by :meth:`advprior.PosePrior.invert` and :meth:`advprior.PosePrior.project_pose`.

Method, per pose (all poses in one batch, each its own problem): decode a fixed bank of latents
drawn from the prior (seed 0), start from the ``restarts`` bank latents whose poses are nearest
(chordal rotation distance), run the batched L-BFGS of :mod:`advprior.lbfgs` on

    ``E(z) = mean_j |R_j(z) - R_j|_F^2 + joint_weight * mean_j |p_j(z) - p_j|^2``

(``R_j`` joint rotations; ``p_j`` joint positions in metres from forward kinematics with zero
global orientation, so a wrong hip rotation costs more than a wrong wrist rotation), with ``z``
projected onto the latent manifold inside ``E`` (plus a pose-neutral term keeping the free ``z``
near the manifold, :meth:`advprior.latent.LatentSpace.gauge`), and keep the best restart.
The Frobenius (chordal) distance ``4 (1 - cos angle)`` is the squared geodesic angle to second
order and is smooth where the geodesic distance's gradient is not (at zero).
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from advprior._sync import ForkSafeLock, after_fork_in_child
from advprior.lbfgs import minimize_lbfgs
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle, rotmat_to_rot6d
from advprior.skeleton import NUM_BODY_JOINTS, NUM_SMPL_BODY_JOINTS, check_body_pose
from advprior.tensors import (
    chunk_bounds,
    flatten_batch_dims,
    follow_prior,
    isolated_global_rng,
    unflatten_batch_dims,
)
from advprior.version import autocast_enabled

if TYPE_CHECKING:
    from advprior.interface import Prior

#: Latents decoded once per call to seed the optimisation.
DEFAULT_BANK = 4096
#: Poses one optimisation of :func:`invert` takes at once (its ``chunk_size``).
DEFAULT_CHUNK = 4096
# A last chunk of fewer poses joins the one before (its rotations would take other kernels).
_MIN_CHUNK = 64
#: Weight of :meth:`advprior.latent.LatentSpace.gauge` (no effect on the decoded pose).
GAUGE_WEIGHT = 1.0
_BODY_OF_JOINTS = {NUM_BODY_JOINTS: "smplx", NUM_SMPL_BODY_JOINTS: "smpl"}


#: What :func:`frozen` changed and must put back: ``id(obj) -> [obj, holders, saved]`` for every
#: module (``saved``: its ``training``) and parameter (``saved``: its ``requires_grad``) inside at
#: least one ``frozen`` block, ``holders`` counting those blocks. Per object, not per module
#: passed: ``frozen(model)`` in one thread and ``frozen(model.prior)`` in another overlap.
_FROZEN: dict[int, list[Any]] = {}
#: The ``frozen`` blocks now running: ``token -> (thread ident, objects)``, so that a forked
#: child, where only the forking thread goes on, can put back what the others froze.
_FROZEN_CALLS: dict[int, tuple[int, list[Any]]] = {}
_FROZEN_LOCK = ForkSafeLock()


def _freeze(objs: list[Any], module: nn.Module) -> None:
    for obj in objs:
        entry = _FROZEN.get(id(obj))
        if entry is not None:
            entry[1] += 1
            continue
        saved = obj.training if isinstance(obj, nn.Module) else obj.requires_grad
        _FROZEN[id(obj)] = [obj, 1, saved]
    module.eval()
    for obj in objs:
        if not isinstance(obj, nn.Module):
            obj.requires_grad_(False)


def _thaw(objs: list[Any]) -> None:
    for obj in objs:
        entry = _FROZEN.get(id(obj))
        if entry is None:
            continue
        entry[1] -= 1
        if entry[1] == 0:
            del _FROZEN[id(obj)]
            if isinstance(obj, nn.Module):
                obj.training = entry[2]
            else:
                obj.requires_grad_(entry[2])


@after_fork_in_child
def _thaw_other_threads() -> None:
    """In a forked child only the forking thread goes on: what the parent's other threads
    froze is put back (their blocks will never end there)."""
    me = threading.get_ident()
    with _FROZEN_LOCK:
        for token, (thread, objs) in list(_FROZEN_CALLS.items()):
            if thread != me:
                del _FROZEN_CALLS[token]
                _thaw(objs)


@contextmanager
def frozen(module: object) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; the previous state is restored.
    Anything that is not an ``nn.Module`` passes through unchanged.

    Safe across threads sharing one module (a server fitting requests concurrently with one
    prior): the state is put back when the last block holding it ends, not when the first
    does (which turned dropout and gradients back on under a thread still fitting, and then
    restored the frozen state for good)."""
    if not isinstance(module, nn.Module):
        yield
        return
    # Each submodule's own mode, not just the top one: ``module.train(True)`` afterwards would
    # also switch on layers the caller had put in eval mode on purpose (frozen BatchNorm
    # statistics, dropout off while fine-tuning), which then silently change during training.
    objs: list[Any] = [*module.modules(), *module.parameters()]
    token = object()
    with _FROZEN_LOCK:
        _freeze(objs, module)
        _FROZEN_CALLS[id(token)] = (threading.get_ident(), objs)
    try:
        yield
    finally:
        with _FROZEN_LOCK:
            if _FROZEN_CALLS.pop(id(token), None) is not None:
                _thaw(objs)


def _decode_rotmat(prior: Prior, z: Tensor, joints: int) -> Tensor:
    """``(n, joints, 3, 3)``: the prior's decoded joints in the layout of ``joints`` (21, 23)."""
    return prior.decode(z, output="rotmat", body=_BODY_OF_JOINTS[joints])


# Device types whose autocast full_precision switches off (those this torch does not know are
# skipped).
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


@contextmanager
def full_precision() -> Iterator[None]:
    """``torch.autocast`` off, for every device type where the caller had it on.

    Why: an optimisation through the decoder (inversion, fitting, geodesic paths, the score)
    run inside a caller's mixed-precision region (``torch.autocast``, Lightning's
    ``precision="bf16-mixed"``) would decode in bfloat16 / float16 and converge to worse
    answers (measured on GAN-S: 2.7x the keypoint loss of ``fit_keypoints``, 13% more inversion
    error) with no sign of it."""
    with ExitStack() as stack:
        for device in _AUTOCAST_DEVICES:
            if autocast_enabled(device):  # False for a device type this build does not know
                stack.enter_context(torch.autocast(device, enabled=False))
        yield


def with_autograd(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` outside inference mode and in full precision (:func:`full_precision`), on
    ordinary copies of its tensor arguments (a decorator for every function that optimises:
    inversion, geodesic paths, fitting, the score).

    Why: an inversion is an optimisation and needs autograd, which ``torch.inference_mode()``
    (Lightning's validate and predict loops) switches off in a way ``enable_grad`` cannot undo,
    and tensors made inside it can never join an autograd graph. That holds for the weights of
    a prior or body model loaded inside ``inference_mode`` too (a script wrapped whole in it,
    a model built lazily in a predict step), even once the mode has ended: such a module
    argument is used through a copy made outside inference mode (every call, since the
    caller's module cannot be changed in place; a module without inference tensors is used
    as it is)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        inside = torch.is_inference_mode_enabled()
        if not inside and not any(map(_holds_inference, (*args, *kwargs.values()))):
            with full_precision():
                return fn(*args, **kwargs)
        with torch.inference_mode(False), full_precision():
            args = tuple(_autograd_copy(a, inside) for a in args)
            kwargs = {k: _autograd_copy(v, inside) for k, v in kwargs.items()}
            return fn(*args, **kwargs)

    return wrapper


def _holds_inference(value: object) -> bool:
    """Whether ``value`` is, or is a module holding, a tensor made in inference mode."""
    if isinstance(value, Tensor):
        return value.is_inference()
    if isinstance(value, nn.Module):
        return any(t.is_inference() for t in (*value.parameters(), *value.buffers()))
    return False


def _autograd_copy(value: Any, clone_tensors: bool) -> Any:
    """``value`` usable in autograd outside inference mode: a tensor cloned (every tensor when
    ``clone_tensors``, else only an inference tensor), a module holding inference tensors
    deep-copied (its copies are ordinary tensors), anything else itself. Call it outside
    inference mode: a clone made inside would be an inference tensor again."""
    if isinstance(value, Tensor):
        return value.clone() if clone_tensors or value.is_inference() else value
    if isinstance(value, nn.Module) and _holds_inference(value):
        return copy.deepcopy(value)
    return value


@with_autograd
def invert(
    prior: Prior,
    body_pose: Tensor,
    *,
    steps: int = 50,
    restarts: int = 1,
    joint_weight: float = 100.0,
    bank_size: int = DEFAULT_BANK,
    body_model: object | None = None,
    return_error: bool = False,
    encoder: PoseEncoder | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> Tensor | tuple[Tensor, Tensor]:
    """Latents ``(..., D)`` whose decoded poses best match ``body_pose``.

    Args:
        prior: a latent prior (:class:`advprior.interface.Prior` with a ``latent_space``:
            :class:`advprior.PosePrior`, the VAE baseline, ...).
        body_pose: ``(..., 63)`` axis-angle, radians, SMPL joints 1..21 (or ``(..., 69)``,
            joints 1..23; the prior's missing hand joints count as identity); also per joint
            ``(..., 21 | 23, 3)`` or as rotation matrices ``(..., 21 | 23, 3, 3)``
            (:func:`advprior.skeleton.check_body_pose`).
        steps: L-BFGS iterations per restart.
        restarts: starting latents per pose (the nearest bank samples).
        joint_weight: weight of the mean squared joint-position error (metres^2) against the
            mean squared Frobenius rotation error.
        bank_size: prior samples decoded to pick the starting latents (seeded, deterministic).
        body_model: body whose rest joints are used for the joint-position term (stand-in
            skeleton when None).
        return_error: also return the mean joint-position error ``(...)`` in metres of the
            decoded poses.
        encoder: an amortised :class:`PoseEncoder` trained for ``prior``: its prediction is the
            first starting latent (the other ``restarts - 1`` come from the bank), so a few
            ``steps`` suffice.
        chunk_size: poses optimised at once. A larger batch is inverted in chunks (memory:
            ~20 KB per pose and restart of a chunk, instead of the whole batch's); each pose
            is its own problem, so a chunk changes a pose's result only by float rounding.
            The optimisation amplifies that rounding: the same noisy poses inverted one at a
            time and in one batch of 16 ended up to ~5 degrees apart on a joint (mean ~0.6),
            with the same mean error; batches of equal size give identical latents whatever
            the other rows hold.

    Returns:
        ``z (..., D)`` on the prior's manifold (projected), detached; with ``return_error``,
        ``(z, error)``. Each pose is optimised independently of the others in its batch.
    """
    body_pose = check_body_pose(body_pose, refuse_degrees=True)
    checked = {"steps": steps, "restarts": restarts, "bank_size": bank_size}
    for name, value in {**checked, "chunk_size": chunk_size}.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (0 if name == "steps" else 1)
        ):
            raise ValueError(
                f"{name} must be a {'non-negative' if name == 'steps' else 'positive'}"
                f" int, got {value!r}"
            )
    restarts = min(restarts, bank_size)
    space = prior.latent_space
    if space is None:
        raise TypeError(f"{type(prior).__name__} has no latent space to invert into")
    dim = space.dim
    joints = body_pose.shape[-1] // 3
    target, lead = flatten_batch_dims(body_pose, -2)
    n = target.shape[0]
    param = torch.empty(0, dtype=prior.dtype, device=prior.device)
    dtype = target.dtype
    if n == 0:  # the dtypes of a non-empty batch: z the prior's, the error the pose's
        z = torch.zeros(*lead, dim, dtype=prior.dtype, device=prior.device)
        return (z, target.new_zeros(lead)) if return_error else z
    with frozen(prior):
        gen = torch.Generator().manual_seed(0)
        bank = prior.project(prior.sample_latent(bank_size, generator=gen).to(param.device))
        with torch.no_grad():
            bank_rot = _decode_rotmat(prior, bank, joints).to(dtype).reshape(bank_size, -1)
        # Poses are optimised chunk_size at a time: the objective's graph (~20 KB per pose and
        # restart) and the pose-to-bank similarities (bank_size floats per pose) of a whole
        # AMASS would not fit in memory. Every pose is its own problem (advprior.lbfgs), so
        # only float rounding can tell a chunk from the whole batch; a last chunk of a few
        # poses joins the one before, so that it runs the same (large-batch) kernels.
        parts = [
            _invert_chunk(
                prior,
                target[a:b],
                joints,
                bank,
                bank_rot,
                steps,
                restarts,
                joint_weight,
                body_model,
                return_error,
                encoder,
            )
            for a, b in chunk_bounds(n, chunk_size, min_last=_MIN_CHUNK)
        ]
    z = torch.cat([z for z, _ in parts])
    if return_error:
        error = torch.cat([e for _, e in parts])
        return unflatten_batch_dims(z, lead), unflatten_batch_dims(error, lead)
    return unflatten_batch_dims(z, lead)


def _invert_chunk(
    prior: Prior,
    target: Tensor,
    joints: int,
    bank: Tensor,
    bank_rot: Tensor,
    steps: int,
    restarts: int,
    joint_weight: float,
    body_model: object | None,
    return_error: bool,
    encoder: PoseEncoder | None,
) -> tuple[Tensor, Tensor | None]:
    """:func:`invert` of ``target (n, 3 * joints)`` with the decoded ``bank``: latents ``(n,
    D)`` and, with ``return_error``, the errors ``(n,)`` (else None)."""
    # The body module (smplx) loads on first use, so that `import advprior` stays light.
    from advprior.body import forward_kinematics

    space = prior.latent_space
    dim = space.dim
    n = target.shape[0]
    dtype, param_dtype = target.dtype, bank.dtype

    def pose_of(rot: Tensor) -> Tensor:
        return rotmat_to_axis_angle(rot).flatten(-2)

    target_rot = axis_angle_to_rotmat(target.reshape(n, joints, 3))
    zero = target.new_zeros(n, 3)
    target_pos = forward_kinematics(zero, target, body_model=body_model)
    flat = target_rot.reshape(n, -1)
    # |A - B|^2 = |A|^2 + |B|^2 - 2 <A, B>; |R|_F^2 = 3 per joint, so only <A, B> ranks.
    nearest = (flat @ bank_rot.T).topk(restarts, dim=1).indices  # (n, restarts)
    z0 = bank[nearest].to(dtype)  # (n, r, D)
    if encoder is not None:
        with torch.no_grad():
            guess = encoder(target_rot.to(param_dtype)).to(dtype)
        z0 = torch.cat([guess[:, None], z0[:, : restarts - 1]], 1)
    z0 = z0.reshape(n * restarts, dim)
    rot_r = target_rot.repeat_interleave(restarts, 0)
    pos_r = target_pos.repeat_interleave(restarts, 0)
    # (m, 1, 3): smplx's per-joint layout, which forward_kinematics reads without testing
    # whether a (3, 3) orientation of 3 poses is also a rotation matrix (a sync per step)
    zero_r = zero.repeat_interleave(restarts, 0)[:, None]

    def energy(z: Tensor) -> Tensor:
        zp = prior.project(z.to(param_dtype))
        rot = _decode_rotmat(prior, zp, joints).to(dtype)
        pos = forward_kinematics(zero_r, pose_of(rot), body_model=body_model)
        rot_err = ((rot - rot_r) ** 2).sum((-1, -2)).mean(-1)
        pos_err = ((pos - pos_r) ** 2).sum(-1).mean(-1)
        return rot_err + joint_weight * pos_err + GAUGE_WEIGHT * space.gauge(z)

    res = minimize_lbfgs(energy, z0, max_iter=steps)
    best = res.loss.view(n, restarts).argmin(1) + torch.arange(n, device=z0.device) * restarts
    z = prior.project(res.x[best].to(param_dtype)).detach()
    if not return_error:
        return z, None
    with torch.no_grad():
        rot = _decode_rotmat(prior, z, joints).to(dtype)
        pos = forward_kinematics(zero, pose_of(rot), body_model=body_model)
        return z, (pos - target_pos).norm(dim=-1).mean(-1)


class PoseEncoder(nn.Module):
    """Amortised inversion: an MLP from joint rotations to a latent of one prior.

    Input: rotation matrices ``(..., J, 3, 3)`` (their 6D form is fed to the net); output: the
    projected latent ``(..., D)``. Trained by :meth:`fit` on the prior's own samples (no data
    needed): the decoded pose of the prediction must match the sampled pose (chordal rotation
    error), with small rotation noise on the inputs so that real, slightly off-manifold poses
    land near the right latent. Pass it to :func:`invert` (``encoder=``) as a starting point.

    ``seed``: the net's initial weights come from a generator seeded with it, and the caller's
    global RNG is left as it was; None (the default, as any torch module): from torch's global
    RNG, so ``fit(seed=...)`` then gives the same encoder only after ``torch.manual_seed``.
    """

    def __init__(
        self,
        prior: Prior,
        hidden: int = 512,
        joints: int = NUM_BODY_JOINTS,
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if prior.latent_space is None:
            raise TypeError(f"{type(prior).__name__} has no latent space to encode into")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.prior = prior
        self.joints = joints
        with isolated_global_rng(seed, enabled=seed is not None):
            net = nn.Sequential(
                nn.Linear(joints * 6, hidden),
                nn.LeakyReLU(0.2),
                nn.Linear(hidden, hidden),
                nn.LeakyReLU(0.2),
                nn.Linear(hidden, prior.latent_space.dim),
            )
        # on the prior's device and dtype: fit() decodes the net's output through the prior
        self.net = follow_prior(net, prior)

    def forward(self, rotmat: Tensor) -> Tensor:
        x = rotmat_to_rot6d(rotmat[..., : self.joints, :, :]).flatten(-2)
        return self.prior.project(self.net(x))

    def fit(
        self,
        steps: int = 1500,
        batch_size: int = 512,
        lr: float = 1e-3,
        noise: float = 0.05,
        seed: int = 0,
    ) -> list[float]:
        """Train on ``steps`` batches of prior samples; returns the loss curve. The prior stays
        frozen. The batches and their noise come from ``seed`` (the global RNG is not read), so
        the result is deterministic for a seed and the initial weights: construct the encoder
        with ``seed=`` (or after ``torch.manual_seed``) for the same encoder every time."""
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        losses = []
        param = next(self.net.parameters())
        with frozen(self.prior):
            for _ in range(steps):
                with torch.no_grad():
                    z = self.prior.sample_latent(batch_size, generator=gen).to(param)
                    rot = _decode_rotmat(self.prior, self.prior.project(z), self.joints)
                    jitter = noise * torch.randn(*rot.shape[:-2], 3, generator=gen).to(param)
                    noisy = rot @ axis_angle_to_rotmat(jitter)
                pred = _decode_rotmat(self.prior, self(noisy), self.joints)
                loss = ((pred - rot) ** 2).sum((-1, -2)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                # kept as tensors: a .item() per step would make a GPU wait at every step
                losses.append(loss.detach())
        return torch.stack(losses).tolist() if losses else []
