#!/usr/bin/env python3
"""Independent numpy references for the preference losses of org.peft4j.core.rlhf, written as one
small committed fixture (JSON).

The formulas were read from the papers -- DPO (Rafailov et al. 2023, arXiv 2305.18290) with the
label-smoothed "conservative" variant, the Bradley-Terry reward-model loss of InstructGPT (Ouyang
et al. 2022, arXiv 2203.02155), PPO's clipped objectives (Schulman et al. 2017, arXiv 1707.06347),
GAE (Schulman et al. 2015, arXiv 1506.02438) and the adaptive KL controller of Ziegler et al.
(arXiv 1909.08593) -- and written here from scratch with numpy only. Gradients are not derived by
hand: they are central finite differences of the loss in float64, so the Java derivatives are
checked against the definition, not against a second copy of themselves. GAE is the explicit sum
A_t = sum_l (gamma*lambda)^l delta_{t+l}, not the backward recursion the Java code uses.

Output: peft-core/src/test/resources/org/peft4j/core/rlhf/preference_reference.json
Run from anywhere:  python3 peft-core/src/test/python/preference_reference.py
The output is deterministic (fixed seed); the file is committed.
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "resources", "org", "peft4j", "core", "rlhf",
                                    "preference_reference.json"))
RNG = np.random.default_rng(20240527)


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        xp = x.copy()
        xm = x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def dpo_case(beta, eps, n=6):
    pc, pr, rc, rr = (RNG.normal(-8.0, 3.0, n) for _ in range(4))

    def loss(pc_, pr_):
        h = beta * ((pc_ - rc) - (pr_ - rr))
        return np.mean(-(1 - eps) * log_sigmoid(h) - eps * log_sigmoid(-h))

    chosen_rewards = beta * (pc - rc)
    rejected_rewards = beta * (pr - rr)
    return {
        "beta": beta, "labelSmoothing": eps,
        "policyChosen": pc.tolist(), "policyRejected": pr.tolist(),
        "referenceChosen": rc.tolist(), "referenceRejected": rr.tolist(),
        "loss": float(loss(pc, pr)),
        "dChosen": numeric_grad(lambda v: loss(v, pr), pc).tolist(),
        "dRejected": numeric_grad(lambda v: loss(pc, v), pr).tolist(),
        "chosenRewards": chosen_rewards.tolist(), "rejectedRewards": rejected_rewards.tolist(),
        "accuracy": float(np.mean(chosen_rewards > rejected_rewards)),
        "margin": float(np.mean(chosen_rewards - rejected_rewards)),
    }


def bradley_terry_case(center, n=7):
    rc = RNG.normal(0.0, 1.5, n)
    rr = RNG.normal(0.0, 1.5, n)

    def loss(a, b):
        return np.mean(-log_sigmoid(a - b)) + center * np.mean((a + b) ** 2)

    return {
        "center": center, "chosen": rc.tolist(), "rejected": rr.tolist(),
        "loss": float(loss(rc, rr)),
        "dChosen": numeric_grad(lambda v: loss(v, rr), rc).tolist(),
        "dRejected": numeric_grad(lambda v: loss(rc, v), rr).tolist(),
        "accuracy": float(np.mean(rc > rr)), "margin": float(np.mean(rc - rr)),
    }


def policy_case(clip, n=12):
    old = RNG.normal(-2.0, 1.0, n)
    new = old + RNG.normal(0.0, 0.35, n)
    adv = RNG.normal(0.0, 1.0, n)

    def terms(lp):
        ratio = np.exp(lp - old)
        return -adv * ratio, -adv * np.clip(ratio, 1 - clip, 1 + clip)

    def loss(lp):
        a, b = terms(lp)
        return np.mean(np.maximum(a, b))

    a, b = terms(new)
    return {
        "clip": clip, "logProbs": new.tolist(), "oldLogProbs": old.tolist(), "advantages": adv.tolist(),
        "loss": float(loss(new)), "grad": numeric_grad(loss, new).tolist(),
        "clipFraction": float(np.mean(b > a)),
    }


def value_case(clip, n=12):
    old = RNG.normal(0.0, 1.0, n)
    v = old + RNG.normal(0.0, 0.3, n)
    ret = old + RNG.normal(0.0, 0.5, n)

    def terms(x):
        xc = np.clip(x, old - clip, old + clip)
        return (x - ret) ** 2, (xc - ret) ** 2

    def loss(x):
        a, b = terms(x)
        return 0.5 * np.mean(np.maximum(a, b))

    a, b = terms(v)
    return {
        "clip": clip, "values": v.tolist(), "oldValues": old.tolist(), "returns": ret.tolist(),
        "loss": float(loss(v)), "grad": numeric_grad(loss, v).tolist(),
        "clipFraction": float(np.mean(b > a)),
    }


def gae_case(gamma, lam, n=9):
    r = RNG.normal(0.0, 1.0, n)
    v = RNG.normal(0.0, 1.0, n)
    v_next = np.append(v[1:], 0.0)
    delta = r + gamma * v_next - v
    adv = np.array([sum((gamma * lam) ** l * delta[t + l] for l in range(n - t)) for t in range(n)])
    return {"gamma": gamma, "lambda": lam, "rewards": r.tolist(), "values": v.tolist(),
            "advantages": adv.tolist()}


def whiten_case(n=10):
    x = RNG.normal(3.0, 2.0, n)
    return {"x": x.tolist(), "whitened": ((x - x.mean()) / np.sqrt(x.var(ddof=1) + 1e-8)).tolist()}


def kl_case(beta, kl, target, horizon, n):
    err = np.clip(kl / target - 1, -0.2, 0.2)
    return {"beta": beta, "kl": kl, "target": target, "horizon": horizon, "n": n,
            "next": float(beta * (1 + err * n / horizon))}


def main():
    fixture = {
        "dpo": [dpo_case(0.1, 0.0), dpo_case(0.5, 0.15), dpo_case(2.0, 0.3)],
        "bradleyTerry": [bradley_terry_case(0.0), bradley_terry_case(0.01)],
        "policy": [policy_case(0.2), policy_case(0.05)],
        "value": [value_case(0.2), value_case(0.05)],
        "gae": [gae_case(1.0, 0.95), gae_case(0.9, 0.5)],
        "whiten": [whiten_case()],
        "adaptiveKl": [kl_case(0.2, 9.0, 6.0, 10000.0, 64), kl_case(0.2, 3.0, 6.0, 10000.0, 64),
                       kl_case(0.1, 6.6, 6.0, 1000.0, 32)],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
