"""Example 4: check the whole model's backward pass against finite differences.

For the loss ``L(theta) = MSE(ESPCN_theta(x), y)`` the backward pass gives ``dL/dtheta`` for every parameter
and ``dL/dx`` for the input. A central difference estimates one partial derivative with error O(eps²)::

    dL/dtheta_m  ~  (L(theta + eps e_m) - L(theta - eps e_m)) / (2 eps)

and a random direction ``v`` checks all of them at once: ``(L(theta + eps v) - L(theta - eps v)) / (2 eps)``
must equal ``<dL/dtheta, v>``. We compare with the relative error ``|a - n| / max(|a| + |n|, 1e-12)``.
In float64 a correct backward gives about 1e-8 or less; a wrong one gives an error of order one. (float32 cannot do
this: its 1e-7 rounding divided by eps swamps the difference, so the check runs a float64 copy.)

Run: ``python examples/04_gradient_check.py [--out DIR] [--fast]``
"""
from __future__ import annotations

import _common
import _draw
import numpy as np

from npespcn import ESPCN
from npespcn.functional import mse_loss, use_backend


def rel_error(a, n) -> float:
    """``|a - n| / max(|a| + |n|, 1e-12)``, the largest over all entries."""
    a, n = np.asarray(a, float), np.asarray(n, float)
    return float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-12)))


def loss_of(model, x, y) -> float:
    """The loss alone. Evaluated with the NumPy reference kernels: on these tiny arrays they are faster
    than numba's parallel launch, and they are an independent code path."""
    with use_backend("reference"):
        return mse_loss(model.infer(x), y)[0]


def analytic(model, x, y, backend: str = "numba"):
    """Loss, parameter gradients (copies) and input gradient from one forward + backward."""
    with use_backend(backend):
        loss, dy = mse_loss(model.forward(x), y)
        dx = model.backward(dy)
    return loss, {k: g.copy() for k, g in model.grads.items()}, dx


def check_model(model, x, y, rng, per_param: int, eps: float = 1e-5) -> dict:
    """Finite-difference check of ``per_param`` random entries of every parameter, of the input, and of
    one random direction through all parameters. Returns the worst relative error of each."""
    _, grads, dx = analytic(model, x, y)
    report = {}
    for name, p in model.params.items():
        worst = 0.0
        for flat in rng.choice(p.size, size=min(per_param, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = p[idx]
            p[idx] = old + eps
            lp = loss_of(model, x, y)
            p[idx] = old - eps
            lm = loss_of(model, x, y)
            p[idx] = old
            worst = max(worst, rel_error(grads[name][idx], (lp - lm) / (2 * eps)))
        report[name] = worst
    worst = 0.0
    for flat in rng.choice(x.size, size=min(per_param, x.size), replace=False):
        idx = np.unravel_index(flat, x.shape)
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        worst = max(worst, rel_error(dx[idx], (loss_of(model, xp, y) - loss_of(model, xm, y)) / (2 * eps)))
    report["input"] = worst
    report["direction"] = directional(model, x, y, grads, rng, eps)
    return report


def directional(model, x, y, grads, rng, eps) -> float:
    """Relative error of ``<grad, v>`` against the central difference along a random unit direction ``v``."""
    params = model.params
    v = {k: rng.normal(size=p.shape) for k, p in params.items()}
    norm = np.sqrt(sum(np.sum(d * d) for d in v.values()))
    v = {k: d / norm for k, d in v.items()}
    saved = {k: p.copy() for k, p in params.items()}
    for k, p in params.items():
        p += eps * v[k]
    lp = loss_of(model, x, y)
    for k, p in params.items():
        p[...] = saved[k] - eps * v[k]
    lm = loss_of(model, x, y)
    for k, p in params.items():
        p[...] = saved[k]
    return rel_error(sum(np.sum(grads[k] * v[k]) for k in params), (lp - lm) / (2 * eps))


def main(argv=None, out_dir=None, fast: bool = False) -> dict:
    out, fast = _common.setup(argv, out_dir, fast, __doc__)
    rng = np.random.default_rng(0)
    r = 3
    # Every activation of guide section 5 is checked in both modes: tanh, PReLU, relu, gelu.
    configs = [("paper, tanh", ESPCN.paper(r, dtype=np.float64, seed=1)),
               ("paper, PReLU, tanh output", ESPCN.paper(r, activation="prelu", output_activation="tanh",
                                                           dtype=np.float64, seed=2)),
               ("small, relu", ESPCN(r, layers=((3, 8), (3, 6)), activation="relu", dtype=np.float64, seed=5)),
               ("small, gelu", ESPCN(r, layers=((3, 8), (3, 6)), activation="gelu", dtype=np.float64, seed=6))]
    if not fast:
        configs += [("seven layers, gelu", ESPCN.seven(r, activation="gelu", dtype=np.float64, seed=3)),
                    ("paper x2, RGB, tanh", ESPCN.paper(2, channels=3, dtype=np.float64, seed=4))]
    per_param = 3 if fast else 10
    reports = {}
    for label, model in configs:
        # The default last-layer init N(0, 0.001²) makes the output almost constant; larger weights give
        # every gradient a visible size.
        last = model.params[f"{model.last_layer}.weight"]
        last[...] = rng.normal(scale=0.1, size=last.shape)
        s = model.scale
        x = rng.uniform(0, 1, size=(2, model.channels, 5, 6))
        y = rng.uniform(0, 1, size=(2, model.channels, 5 * s, 6 * s))
        rep = check_model(model, x, y, rng, per_param)
        # The two backends' analytic gradients agree to rounding.
        _, g_nb, dx_nb = analytic(model, x, y, "numba")
        _, g_ref, dx_ref = analytic(model, x, y, "reference")
        rep["numba vs reference"] = max([rel_error(g_nb[k], g_ref[k]) for k in g_nb] + [rel_error(dx_nb, dx_ref)])
        reports[label] = rep
        print(f"{label}: worst relative error over {per_param} entries per tensor")
        for name, err in rep.items():
            print(f"   {name:20s} {err:.2e}")
        assert max(rep.values()) < 1e-5, f"{label}: gradient check failed: {rep}"

    # A deliberately wrong backward (the sign of one weight gradient flipped) is caught at once.
    model = configs[0][1]
    x = rng.uniform(0, 1, size=(1, 1, 5, 5))
    y = rng.uniform(0, 1, size=(1, 1, 5 * r, 5 * r))
    _, grads, _ = analytic(model, x, y)
    grads["conv2.weight"] = -grads["conv2.weight"]
    wrong = directional(model, x, y, grads, np.random.default_rng(5), 1e-6)
    assert wrong > 1e-2
    print(f"\nwith the sign of conv2's weight gradient flipped, the directional check gives {wrong:.2e}")

    # The step size: truncation error O(eps²) for large eps, rounding error ~ 1e-16 / eps for small eps.
    _, grads, _ = analytic(model, x, y)
    epsilons = [10.0 ** e for e in range(-1, -13, -1)]
    errs = [directional(model, x, y, grads, np.random.default_rng(6), e) for e in epsilons]
    best = epsilons[int(np.argmin(errs))]
    print("eps:       " + " ".join(f"{e:8.0e}" for e in epsilons))
    print("rel error: " + " ".join(f"{v:8.1e}" for v in errs))
    assert errs[epsilons.index(1e-6)] < errs[0] and errs[epsilons.index(1e-6)] < errs[-1]
    print(f"smallest error at eps = {best:.0e}: too large and the O(eps²) truncation dominates, too small "
          f"and rounding does")
    errs_plot = [max(v, 1e-16) for v in errs]
    pic = _draw.line_plot({"directional check": (np.log10(epsilons), errs_plot)}, logy=True,
                          title="finite-difference error vs step size (float64)", xlabel="log10(eps)",
                          ylabel="relative error")
    files = [_draw.save_png(pic, out / "04_gradient_check_eps.png")]
    for f in files:
        print(f"wrote {f}")
    return {"reports": reports, "wrong_sign_error": wrong, "epsilons": epsilons, "eps_errors": errs,
            "best_eps": best, "files": [str(f) for f in files]}


if __name__ == "__main__":
    _common.run(main)
