"""Start a GAN generator from a trained VAE decoder of the same data (``init_from``).

The paper's generator has the shape of VPoser's decoder, so a decoder trained as a VAE on the
same training split is a generator that already covers the data and maps nearby latents to
nearby poses; adversarial training then only has to sharpen it. The VAE decodes ``N(0, I)``
latents and the GAN its own latent space, so the decoder is not copied but *distilled*: the
generator learns ``G(z) = D_vae(s * z)`` on latents drawn from the GAN's space, where ``s``
gives them the VAE's scale (:func:`teacher_scale`). Distilling also bridges the activation
(VPoser's LeakyReLU slope is 0.01, the paper's generator uses 0.2) and any width difference.

Only the VAE's *decoder* and only its *training split* are used: :func:`load_teacher` refuses a
VAE trained on other data, whose decoder may have seen this run's validation or test poses.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from advprior.baselines import VPoserVAE
from advprior.hub import read_config, resolve_files, sha256_file
from advprior.prior import PosePrior

#: Distillation batch: latents are free, so larger than a GAN batch (smoother regression).
DISTIL_BATCH = 512
#: Adam learning rate of the distillation (cosine-decayed to 0 over the steps): a plain
#: regression, so the usual 1e-3 rather than the adversarial 2e-4.
DISTIL_LR = 1e-3


def teacher_scale(kind: str, dim: int) -> float:
    """Factor ``s`` such that ``s * z`` for ``z`` from the GAN's latent prior of ``kind`` in
    ``dim`` dimensions lies where the VAE's ``N(0, I)`` latents do.

    - ``"sphere"``: the mean norm of a ``N(0, I_dim)`` draw, ``sqrt(2) Gamma((d+1)/2) /
      Gamma(d/2)`` (5.61 for 32 dimensions): in high dimension the Gaussian's mass is a thin
      shell at that radius, so the scaled sphere is its typical set.
    - ``"uniform"``: ``sqrt(3)``, so each coordinate has unit variance as ``N(0, 1)``'s does.
    - ``"normal"``: 1 (the same distribution).
    """
    if kind == "sphere":
        return math.sqrt(2.0) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))
    if kind == "uniform":
        return math.sqrt(3.0)
    if kind == "normal":
        return 1.0
    raise ValueError(f"unknown latent kind {kind!r}")


def load_teacher(
    name_or_path: str | os.PathLike, *, data_sha256: str, latent_dim: int
) -> tuple[VPoserVAE, str]:
    """The frozen VAE of ``name_or_path`` (an alias such as ``"vae"`` or a checkpoint folder)
    and the sha256 of its weights file (for the run's record: a path can later hold other
    weights), after checking that it was trained on the dataset with ``data_sha256`` (its model
    card's ``config.data_sha256``) and has ``latent_dim`` latents.

    Raises ``ValueError`` for a checkpoint of another model type (a GAN has no decoder of
    Gaussian latents to distil), naming both hashes for another dataset, and for a checkpoint
    that does not record its data (a decoder of unknown provenance could carry held-out poses).
    """
    files = resolve_files(name_or_path)
    kind = read_config(files.config)["model_type"]
    if kind != VPoserVAE.model_type:
        raise ValueError(
            f"init_from {str(name_or_path)!r} is a {kind!r} checkpoint; it takes a VAE "
            f"({VPoserVAE.model_type!r}) trained on the same dataset: advprior train --model vae"
        )
    teacher = VPoserVAE.from_pretrained(name_or_path, freeze=True)
    trained_on = ((teacher.training_metadata or {}).get("config") or {}).get("data_sha256")
    if trained_on is None:
        raise ValueError(
            f"init_from {str(name_or_path)!r}: the checkpoint does not record the data it was "
            "trained on (config.json training.config.data_sha256), so it cannot be shown to "
            "have seen only this run's training split"
        )
    if trained_on != data_sha256:
        raise ValueError(
            f"init_from {str(name_or_path)!r} was trained on data sha256 {trained_on[:12]}..., "
            f"this run trains on {data_sha256[:12]}...: its decoder may have seen this run's "
            "validation or test poses; train the VAE on the same dataset first"
        )
    if teacher.latent_dim != latent_dim:
        raise ValueError(
            f"init_from {str(name_or_path)!r} has {teacher.latent_dim} latent dimensions, "
            f"this run {latent_dim}"
        )
    return teacher, sha256_file(files.weights)


def distil_decoder(
    student: PosePrior,
    teacher: VPoserVAE,
    *,
    steps: int,
    generator: torch.Generator,
    batch_size: int = DISTIL_BATCH,
    lr: float = DISTIL_LR,
) -> dict[str, Any]:
    """Fit ``student``'s generator to ``teacher``'s decoder in place: minimise the squared
    chordal distance ``||G(z) - D(s z)||^2`` between rotation matrices, summed over the 21
    joints and averaged over ``batch_size`` latents ``z`` drawn from the student's latent
    prior with ``generator`` (``s``: :func:`teacher_scale`), with Adam for ``steps`` steps.

    The student trains in training mode (its dropout on, as in adversarial training); the
    teacher runs in eval mode without gradients. Returns ``{"steps", "scale", "first_loss",
    "final_loss"}`` (the losses of the first and the last batch) for the run's record.
    """
    space = student.latent_space
    scale = teacher_scale(space.kind, space.dim)
    device = next(student.parameters()).device
    teacher = teacher.to(device).eval()
    was_training = student.training
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    first = last = float("nan")
    try:
        for step in range(steps):
            z = student.sample_latent(batch_size, generator=generator).to(device)
            with torch.no_grad():
                target = teacher.decode(scale * z, output="rotmat")
            pose = student.decode(z, output="rotmat")
            loss = ((pose - target) ** 2).sum(dim=(-3, -2, -1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            last = loss.item()
            if step == 0:
                first = last
            if not math.isfinite(last):
                raise FloatingPointError(f"distillation loss is not finite at step {step + 1}")
    finally:
        student.train(was_training)
    return {"steps": steps, "scale": scale, "first_loss": first, "final_loss": last}
