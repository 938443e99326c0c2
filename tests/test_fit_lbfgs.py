"""The batched per-row L-BFGS: agrees with torch's L-BFGS on one problem, rows independent."""

from __future__ import annotations

import pytest
import torch

from advprior.lbfgs import evaluate, minimize_lbfgs


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return ((1 - x[:, :-1]) ** 2 + 100 * (x[:, 1:] - x[:, :-1] ** 2) ** 2).sum(-1)


def ill_conditioned(x: torch.Tensor) -> torch.Tensor:
    scales = torch.logspace(0, 3, x.shape[1], dtype=x.dtype)
    return 0.5 * (scales * x * x).sum(-1)


@pytest.mark.parametrize("iters", [5, 25])
def test_matches_torch_lbfgs_on_a_single_problem(iters: int) -> None:
    x0 = torch.randn(1, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ours = minimize_lbfgs(
        ill_conditioned,
        x0,
        max_iter=iters,
        history_size=10,
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x],
        max_iter=iters,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = ill_conditioned(x).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(ours.x, x.detach(), rtol=1e-6, atol=1e-9)


def test_rows_converge_to_the_minimum() -> None:
    # In 2D the Rosenbrock function has one minimum, (1, 1), at the end of a curved valley.
    x0 = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    res = minimize_lbfgs(rosenbrock, x0, max_iter=300, tolerance_grad=1e-10, tolerance_change=1e-15)
    assert torch.allclose(res.x, torch.ones_like(res.x), atol=1e-4)
    assert bool(res.converged.all())
    # Rows take their own number of iterations (no shared stopping rule).
    assert len(set(res.iterations.tolist())) > 1


def test_a_row_is_independent_of_the_other_rows() -> None:
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 5, dtype=torch.float32, generator=gen)
    other = x0.clone()
    other[1:] = 5 * torch.randn(7, 5, generator=gen)
    a = minimize_lbfgs(rosenbrock, x0, max_iter=60)
    b = minimize_lbfgs(rosenbrock, other, max_iter=60)
    assert torch.equal(a.x[0], b.x[0])
    assert a.iterations[0] == b.iterations[0]


def test_a_nan_row_does_not_disturb_the_others() -> None:
    x0 = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x0[1, 2] = float("nan")
    res = minimize_lbfgs(ill_conditioned, x0, max_iter=50)
    clean = minimize_lbfgs(ill_conditioned, x0[[0, 2]], max_iter=50)
    assert torch.allclose(res.x[[0, 2]], clean.x, atol=1e-8)
    assert torch.equal(res.x[1, [0, 1, 3]], x0[1, [0, 1, 3]])
    assert not bool(res.converged[1]) and int(res.iterations[1]) == 0


def test_evaluate_checks_the_objective_shape() -> None:
    with pytest.raises(ValueError, match=r"per-row losses of shape \(3,\)"):
        evaluate(lambda x: x.sum(), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\(B, P\)"):
        minimize_lbfgs(ill_conditioned, torch.zeros(4))


def test_evaluation_budget_caps_calls_without_coupling_rows() -> None:
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(6, 2, dtype=torch.float64, generator=gen) * 2
    other = x0.clone()
    other[1:] = torch.randn(5, 2, dtype=torch.float64, generator=gen) * 2
    a = minimize_lbfgs(rosenbrock, x0, max_iter=100, max_evals=15)
    b = minimize_lbfgs(rosenbrock, other, max_iter=100, max_evals=15)
    assert a.evaluations <= 16
    assert torch.equal(a.x[0], b.x[0])
    # The capped run stopped early: a longer run gets further.
    full = minimize_lbfgs(rosenbrock, x0, max_iter=100)
    assert float(full.loss.sum()) < float(a.loss.sum())
    assert not bool(a.converged.all())
