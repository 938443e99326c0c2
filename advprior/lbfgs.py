"""Batched L-BFGS with a strong-Wolfe line search, one independent problem per row.

``torch.optim.LBFGS`` minimises one scalar: on a summed batch loss every frame shares the line
search step, the curvature history and the stopping test, so one frame with bad keypoints changes
the result of every other frame. Here each row ``b`` of ``x (B, P)`` is its own problem with its
own history pairs ``(s, y)``, its own step lengths (strong-Wolfe search, Nocedal & Wright
Algorithms 3.5/3.6, as a vectorised per-row state machine) and its own stopping test.

Rows share only the *calls* to ``fn``: every call evaluates the whole batch, each row at its
own trial point, and each row advances its own state by one step (a row that finishes its line
search computes its next direction at once instead of waiting for the slowest row's search).
Because every call has the same shape whatever the other rows are doing, the same kernels run,
and a row's trajectory is bitwise independent of the other rows. A stopped row is re-evaluated
at its final point (wasted work, but it keeps the shapes fixed).

``fn(x)`` must return per-row losses ``(B,)`` where row ``b`` depends on ``x[b]`` only (the
gradient of the summed loss is then the stack of the per-row gradients).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Objective = Callable[[Tensor], Tensor]

C1 = 1e-4  # sufficient decrease (Armijo)
C2 = 0.9  # curvature, the usual choice for quasi-Newton methods


@dataclass
class LBFGSResult:
    """Outcome per row: ``x (B,P)``, ``loss (B,)``, ``grad (B,P)``, ``iterations (B,)`` int64
    (L-BFGS iterations), ``evaluations`` (batched calls of ``fn``), ``converged (B,)`` bool (a
    tolerance was met before ``max_iter``)."""

    x: Tensor
    loss: Tensor
    grad: Tensor
    iterations: Tensor
    evaluations: int
    converged: Tensor


def evaluate(fn: Objective, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row losses ``(B,)`` and gradients ``(B, P)`` of ``fn`` at ``x`` (detached)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        f = fn(x)
        if f.shape != x.shape[:1]:
            raise ValueError(
                f"objective must return per-row losses of shape ({x.shape[0]},), "
                f"got {tuple(f.shape)}"
            )
        (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g.detach()


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Row-wise select: ``mask (B,)`` broadcast over the trailing dimensions."""
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


def _cubic_minimiser(
    t1: Tensor, f1: Tensor, d1: Tensor, t2: Tensor, f2: Tensor, d2: Tensor, lo: Tensor, hi: Tensor
) -> Tensor:
    """Minimiser of the cubic through ``(t1, f1, f1')`` and ``(t2, f2, f2')``, clipped to
    ``[lo, hi]``; the interval midpoint where the cubic has no real minimiser (N&W eq. 3.59)."""
    a = d1 + d2 - 3 * (f1 - f2) / (t1 - t2)
    disc = a * a - d1 * d2
    root = disc.clamp(min=0).sqrt() * torch.sign(t2 - t1)
    t = t2 - (t2 - t1) * (d2 + root - a) / (d2 - d1 + 2 * root)
    ok = (disc >= 0) & torch.isfinite(t)
    return torch.where(ok, t, 0.5 * (lo + hi)).clamp(min=lo, max=hi)


def _direction(g: Tensor, s_hist: Tensor, y_hist: Tensor, rho: Tensor, valid: Tensor) -> Tensor:
    """``-H g`` by the two-loop recursion; history ``(B, m, P)`` with the newest pair last and
    unused slots masked out per row."""
    m = s_hist.shape[1]
    q = g.clone()
    alphas = []
    zero = torch.zeros_like(q[:, 0])
    for i in range(m - 1, -1, -1):
        a = torch.where(valid[:, i], rho[:, i] * _rowdot(s_hist[:, i], q), zero)
        q = q - a[:, None] * y_hist[:, i]
        alphas.append(a)
    alphas.reverse()
    yy = _rowdot(y_hist[:, -1], y_hist[:, -1])
    gamma = torch.where(valid[:, -1], 1.0 / (rho[:, -1] * yy).clamp(min=1e-30), torch.ones_like(yy))
    r = gamma[:, None] * q
    for i in range(m):
        b = torch.where(valid[:, i], rho[:, i] * _rowdot(y_hist[:, i], r), zero)
        r = r + (alphas[i] - b)[:, None] * s_hist[:, i]
    return -r


class _LineSearch:
    """Per-row strong-Wolfe search state; :meth:`start` (re)starts rows, :meth:`observe` takes
    one evaluation and reports which rows finished."""

    def __init__(self, f: Tensor, g: Tensor, max_evals: int, tolerance_change: float) -> None:
        self.max_evals = max_evals
        self.tol = tolerance_change
        z = torch.zeros_like(f)
        self.d = torch.zeros_like(g)
        self.f0, self.g0, self.dphi0 = f.clone(), g.clone(), z.clone()
        self.t = z.clone()
        self.evals = torch.zeros_like(f, dtype=torch.long)
        self.zoom = torch.zeros_like(f, dtype=torch.bool)
        self.t_prev, self.f_prev, self.d_prev = z.clone(), f.clone(), z.clone()
        self.lo, self.f_lo, self.d_lo = z.clone(), f.clone(), z.clone()
        self.hi, self.f_hi, self.d_hi = z.clone(), f.clone(), z.clone()
        self.t_best, self.f_best, self.g_best = z.clone(), f.clone(), g.clone()

    def start(self, rows: Tensor, f: Tensor, g: Tensor, d: Tensor, t: Tensor) -> None:
        """Begin a search along ``d`` from the current point ``(f, g)`` with trial ``t``."""
        dphi = _rowdot(g, d)
        zero = torch.zeros_like(f)
        for name, value in (
            ("d", d),
            ("f0", f),
            ("g0", g),
            ("dphi0", dphi),
            ("t", t),
            ("t_prev", zero),
            ("f_prev", f),
            ("d_prev", dphi),
            ("t_best", zero),
            ("f_best", f),
            ("g_best", g),
        ):
            setattr(self, name, _where(rows, value, getattr(self, name)))
        self.evals = torch.where(rows, torch.zeros_like(self.evals), self.evals)
        self.zoom = self.zoom & ~rows

    def observe(
        self, live: Tensor, ft: Tensor, gt: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Take ``f, g`` at each row's trial point. Returns ``(finished, ok, t, f, g)``: rows
        whose search ended now, whether it found a decrease, and the step and point taken."""
        t, f0, dphi0 = self.t, self.f0, self.dphi0
        dt = _rowdot(gt, self.d)
        finite = torch.isfinite(ft) & torch.isfinite(dt)
        sufficient = finite & (ft <= f0 + C1 * t * dphi0)
        better = live & sufficient & (ft < self.f_best)
        self.t_best = torch.where(better, t, self.t_best)
        self.f_best = torch.where(better, ft, self.f_best)
        self.g_best = _where(better, gt, self.g_best)
        curvature = finite & (dt.abs() <= -C2 * dphi0)
        first = self.evals == 0
        self.evals = self.evals + live.long()

        # Bracketing (Algorithm 3.5).
        br = live & ~self.zoom
        br_hi = br & (~sufficient | (~first & (ft >= self.f_prev)))
        br_acc = br & ~br_hi & curvature
        br_rev = br & ~br_hi & ~br_acc & (dt >= 0)
        br_ext = br & ~br_hi & ~br_acc & ~br_rev
        # Zoom (Algorithm 3.6), on rows zooming before this evaluation.
        zm = live & self.zoom
        zm_hi = zm & (~sufficient | (ft >= self.f_lo))
        zm_acc = zm & ~zm_hi & curvature
        zm_flip = zm & ~zm_hi & ~zm_acc & (dt * (self.hi - self.lo) >= 0)
        zm_lo = zm & ~zm_hi & ~zm_acc
        accepted = br_acc | zm_acc

        inf = torch.full_like(ft, float("inf"))
        fs = torch.where(finite, ft, inf)
        ds = torch.where(finite, dt, torch.zeros_like(dt))
        # Enter zoom with (lo, hi) = (prev, t) after an overshoot, (t, prev) when the slope turned.
        lo = torch.where(br_hi, self.t_prev, torch.where(br_rev, t, self.lo))
        f_lo = torch.where(br_hi, self.f_prev, torch.where(br_rev, fs, self.f_lo))
        d_lo = torch.where(br_hi, self.d_prev, torch.where(br_rev, ds, self.d_lo))
        hi = torch.where(br_hi, t, torch.where(br_rev, self.t_prev, self.hi))
        f_hi = torch.where(br_hi, fs, torch.where(br_rev, self.f_prev, self.f_hi))
        d_hi = torch.where(br_hi, ds, torch.where(br_rev, self.d_prev, self.d_hi))
        # Zoom updates: "flip" moves hi to the old lo before lo moves to t.
        hi, f_hi, d_hi = (
            torch.where(zm_hi, t, torch.where(zm_flip, lo, hi)),
            torch.where(zm_hi, fs, torch.where(zm_flip, f_lo, f_hi)),
            torch.where(zm_hi, ds, torch.where(zm_flip, d_lo, d_hi)),
        )
        lo = torch.where(zm_lo, t, lo)
        f_lo = torch.where(zm_lo, fs, f_lo)
        d_lo = torch.where(zm_lo, ds, d_lo)
        zoom = self.zoom | br_hi | br_rev

        # Next trials: extrapolate (bracketing) or interpolate inside [lo, hi] (zoom).
        t_ext = _cubic_minimiser(
            self.t_prev, self.f_prev, self.d_prev, t, fs, ds, t + 0.01 * (t - self.t_prev), 10 * t
        )
        self.t_prev = torch.where(br_ext, t, self.t_prev)
        self.f_prev = torch.where(br_ext, fs, self.f_prev)
        self.d_prev = torch.where(br_ext, ds, self.d_prev)
        a, b = torch.minimum(lo, hi), torch.maximum(lo, hi)
        width = b - a
        t_zoom = _cubic_minimiser(lo, f_lo, d_lo, hi, f_hi, d_hi, a + 0.1 * width, b - 0.1 * width)
        self.t = torch.where(br_ext, t_ext, torch.where(zoom, t_zoom, t))
        self.lo, self.f_lo, self.d_lo = lo, f_lo, d_lo
        self.hi, self.f_hi, self.d_hi = hi, f_hi, d_hi
        self.zoom = zoom

        # A bracket below numerical resolution or the evaluation budget ends the search.
        gave_up = (
            live
            & ~accepted
            & ((zoom & (width * self.d.abs().amax(-1) < self.tol)) | (self.evals >= self.max_evals))
        )
        fallback = gave_up & (self.f_best < f0)
        finished = accepted | gave_up
        step = torch.where(accepted, t, torch.where(fallback, self.t_best, torch.zeros_like(t)))
        f_new = torch.where(accepted, ft, torch.where(fallback, self.f_best, f0))
        g_new = _where(accepted, gt, _where(fallback, self.g_best, self.g0))
        return finished, accepted | fallback, step, f_new, g_new


def minimize_lbfgs(
    fn: Objective,
    x0: Tensor,
    *,
    max_iter: int = 100,
    history_size: int = 10,
    tolerance_grad: float = 1e-7,
    tolerance_change: float | None = None,
    max_evals_per_step: int = 20,
    max_evals: int | None = None,
) -> LBFGSResult:
    """Minimise ``B`` independent problems ``fn(x)[b]`` over ``x[b]`` from ``x0 (B, P)``.

    Per row: L-BFGS with ``history_size`` pairs, a strong-Wolfe line search (c1=1e-4, c2=0.9,
    at most ``max_evals_per_step`` evaluations, then the best sufficient-decrease point seen),
    first trial step ``min(1, 1/|g|_1)`` after a (re)start (as ``torch.optim.LBFGS``), unit trial
    steps otherwise. A row stops after ``max_iter`` iterations, when ``max|g| <=
    tolerance_grad``, when its loss or step changes by less than ``tolerance_change`` (relative
    to ``max(1, |loss|)`` for the loss; default: 10 machine epsilons of ``x0``'s dtype, below
    which changes are rounding noise), or when a search from steepest descent finds no decrease.
    ``max_evals`` caps the batched calls of ``fn`` (after the first); a row still running then
    keeps its last accepted point. The cap counts calls, which every row sees in the same order,
    so it does not couple rows. Returns an :class:`LBFGSResult`.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (B, P), got {tuple(x0.shape)}")
    if max_iter < 0 or history_size < 1 or max_evals_per_step < 1:
        raise ValueError("max_iter must be >= 0, history_size and max_evals_per_step >= 1")
    if tolerance_change is None:
        tolerance_change = 10 * torch.finfo(x0.dtype).eps
    x = x0.detach().clone()
    n, p = x.shape
    f, g = evaluate(fn, x)
    evaluations = 1
    s_hist = x.new_zeros(n, history_size, p)
    y_hist = x.new_zeros(n, history_size, p)
    rho = x.new_zeros(n, history_size)
    valid = torch.zeros(n, history_size, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    stopped = (g.abs().amax(-1) <= tolerance_grad) | ~torch.isfinite(f) | (max_iter == 0)
    search = _LineSearch(f, g, max_evals_per_step, tolerance_change)
    fresh = torch.ones(n, dtype=torch.bool, device=x.device)
    begin = ~stopped

    while True:
        if bool(begin.any()):
            d = _direction(g, s_hist, y_hist, rho, valid)
            # Not a descent direction (numerical trouble): restart from steepest descent.
            descent = _rowdot(g, d) < 0
            d = _where(descent, d, -g)
            valid &= (descent | ~begin)[:, None]
            fresh |= begin & ~descent
            t0 = torch.where(
                fresh, (1.0 / g.abs().sum(-1).clamp(min=1e-30)).clamp(max=1.0), torch.ones_like(f)
            )
            search.start(begin, f, g, d, t0)
        live = ~stopped
        if not bool(live.any()) or (max_evals is not None and evaluations > max_evals):
            break
        # Stopped rows sit at their final point (d = 0) so every call has the full batch shape.
        trial = x + _where(live, search.t[:, None] * search.d, torch.zeros_like(x))
        ft, gt = evaluate(fn, trial)
        evaluations += 1
        finished, ok, t, f_new, g_new = search.observe(live, ft, gt)
        finished &= live
        ok &= finished

        s = t[:, None] * search.d
        y = g_new - g
        ys = _rowdot(y, s)
        push = ok & (ys > 1e-10)
        s_hist = _where(push, torch.cat([s_hist[:, 1:], s[:, None]], 1), s_hist)
        y_hist = _where(push, torch.cat([y_hist[:, 1:], y[:, None]], 1), y_hist)
        rho = _where(push, torch.cat([rho[:, 1:], (1 / ys.clamp(min=1e-10))[:, None]], 1), rho)
        valid = _where(push, torch.cat([valid[:, 1:], push[:, None]], 1), valid)

        change = (f - f_new).abs()
        scale = torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        x = _where(ok, x + s, x)
        f = torch.where(ok, f_new, f)
        g = _where(ok, g_new, g)
        iterations += finished.long()
        # A failed search with curvature history gets one retry from steepest descent.
        stuck = finished & ~ok & fresh
        retry = finished & ~ok & ~fresh
        valid &= ~retry[:, None]
        fresh = torch.where(finished, retry, fresh)
        stopped |= stuck | (finished & (iterations >= max_iter))
        stopped |= ok & (
            (g.abs().amax(-1) <= tolerance_grad)
            | (change <= tolerance_change * scale)
            | (s.abs().amax(-1) <= tolerance_change)
        )
        begin = finished & ~stopped
    converged = stopped & (iterations < max_iter) & torch.isfinite(f)
    return LBFGSResult(
        x=x, loss=f, grad=g, iterations=iterations, evaluations=evaluations, converged=converged
    )
