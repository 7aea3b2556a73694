#!/usr/bin/env python3
"""Derives the rational approximation of erf used by peft-core's GeluKernel and prints its accuracy.

erf(z) ~ z * P(z^2) / Q(z^2) on 0 <= z <= 4 (erf is odd; beyond 4 it rounds to +-1 in float32), with P of
degree 5 and Q of degree 5, Q(0) = 1, fitted for the smallest maximum absolute error by Lawson's iteratively
reweighted least squares on the linearised problem z*P(u) - erf(z)*(Q(u) - 1) = erf(z), u = z^2.

Prints the coefficients (the constants P0..P5, Q1..Q5 of GeluKernel), the maximum error of the fit in double
precision, and the maximum error when the formula is evaluated in float32 the way GeluKernel evaluates it
(Horner, then z * p / q). Needs numpy and scipy (scipy.special.erf is the reference).

Usage: python3 gelu_erf_fit.py
"""
import numpy as np
from scipy.special import erf

LIMIT = 4.0
P_DEGREE = 5
Q_DEGREE = 5


def fit(iterations=60):
    z = np.unique(np.concatenate([np.cos(np.linspace(0, np.pi, 6000)) * LIMIT / 2 + LIMIT / 2,
                                  np.linspace(0, LIMIT, 6000)]))
    u = z * z
    f = erf(z)
    weights = np.ones_like(z)
    q_values = np.ones_like(z)
    best = None
    for _ in range(iterations):
        a = np.concatenate([z[:, None] * u[:, None] ** np.arange(P_DEGREE + 1)[None, :],
                            -(f[:, None] * u[:, None] ** np.arange(1, Q_DEGREE + 1)[None, :])], axis=1)
        scale = np.sqrt(weights) / q_values
        coef, *_ = np.linalg.lstsq(a * scale[:, None], f * scale, rcond=None)
        p = coef[:P_DEGREE + 1]
        q = np.concatenate([[1.0], coef[P_DEGREE + 1:]])
        q_values = np.polyval(q[::-1], u)
        err = z * np.polyval(p[::-1], u) / q_values - f
        worst = np.abs(err).max()
        if best is None or worst < best[0]:
            best = (worst, p.copy(), q.copy())
        weights = weights * np.abs(err) / np.abs(err).mean()
        weights /= weights.sum()
        q_values = np.abs(q_values)
    return best


def float32_error(p, q):
    z = np.linspace(0, LIMIT, 400001).astype(np.float32)
    u = z * z
    pv = np.zeros_like(z)
    for c in p[::-1]:
        pv = (pv * u + np.float32(c)).astype(np.float32)
    qv = np.zeros_like(z)
    for c in q[::-1]:
        qv = (qv * u + np.float32(c)).astype(np.float32)
    approx = (z * pv / qv).astype(np.float32)
    return np.abs(approx.astype(np.float64) - erf(z.astype(np.float64))).max()


def main():
    worst, p, q = fit()
    for i, c in enumerate(p):
        print("P%d = %r" % (i, float(c)))
    for i, c in enumerate(q[1:], start=1):
        print("Q%d = %r" % (i, float(c)))
    print("max |error| of the fit, double precision: %.3g" % worst)
    print("max |error| evaluated in float32: %.3g" % float32_error(p, q))


if __name__ == "__main__":
    main()
