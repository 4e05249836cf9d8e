#!/usr/bin/env python3
"""
The statistics of make bench (tests/lab/bench_stats.py), on crafted
data, without a lab or a QEMU:

- the ABBA order of the windows, and that it puts both builds' windows
  of a block at the same mean time (what ABAB does not);
- the order-statistic interval for the median: its ranks and exact
  coverage for small n, none below 6 values, and a coverage of at least
  95 % on a skewed distribution over many seeded samples;
- intervals that must contain 1.00 (no cost) and exclude it (3 %);
- a 0.5 % cost that enough blocks resolve and too few must not;
- a linear drift that the ABBA block ratio cancels exactly and that ABAB
  turns into a false difference of more than a point;
- the verdicts: met, missed, and none for an interval wider than ±1 %.

The samples are deterministic: normal quantiles at evenly spaced
probabilities, or random.Random with a fixed seed.

Prints TAP lines; exits 1 if any check failed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
# pylint: disable=wrong-import-position
import bench_stats as st  # noqa: E402
import nkvm  # noqa: E402

tap = nkvm.Tap("bench-stats: ")


def normal_sample(n, mean, sd):
    """N values at the normal distribution's quantiles (i + 0.5) / n:
    the shape of a large sample without its luck."""
    dist = statistics.NormalDist(mean, sd)
    return [dist.inv_cdf((i + 0.5) / n) for i in range(n)]


def shuffled(values, seed):
    """VALUES in a seeded random order, as blocks come in a run (the
    interval must not depend on the order)."""
    out = list(values)
    random.Random(seed).shuffle(out)
    return out


def test_order():
    flat = st.flat_order(4)
    tap.check(flat == ["stock", "fork", "fork", "stock",
                       "stock", "fork", "fork", "stock"],
              "4 pairs run stock, fork, fork, stock, stock, fork, fork, "
              "stock", str(flat))
    tap.check(st.abba_order(3) == [("stock", "fork"), ("fork", "stock"),
                                   ("stock", "fork")],
              "an odd count starts a block it does not finish",
              str(st.abba_order(3)))
    # Window i runs at time i: in each block of four, both builds must
    # sit at the same mean time, which is what cancels a linear drift.
    ok = True
    for b0 in range(0, len(flat), 4):
        block = flat[b0:b0 + 4]
        times = {b: [b0 + i for i, x in enumerate(block) if x == b]
                 for b in st.BUILDS}
        ok &= statistics.mean(times["stock"]) == \
            statistics.mean(times["fork"])
    tap.check(ok, "in every ABBA block both builds' mean window time is "
              "the same")
    abab = ["stock", "fork"] * 4
    tap.check(statistics.mean(i for i, b in enumerate(abab) if b == "fork")
              - statistics.mean(i for i, b in enumerate(abab)
                                if b == "stock") == 1,
              "ABAB (the old order) puts the fork one window later on "
              "average")


def test_interval_ranks():
    tap.check(st.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None,
              "5 values give no 95 % interval (min and max cover the "
              "median with 93.75 % only)")
    iv = st.median_interval([6.0, 1.0, 5.0, 2.0, 4.0, 3.0])
    tap.check(iv and (iv["lo"], iv["hi"], iv["rank"]) == (1.0, 6.0, 1)
              and abs(iv["coverage"] - (1 - 2 / 64)) < 1e-12,
              "6 values: min to max, coverage 1 - 2/64", str(iv))
    iv = st.median_interval(list(range(1, 13)))
    tap.check(iv and (iv["lo"], iv["hi"], iv["rank"]) == (3, 10, 3)
              and abs(iv["coverage"] - (1 - 2 * 79 / 4096)) < 1e-12,
              "12 values: 3rd to 10th smallest, coverage 1 - 2 * 79/4096",
              str(iv))
    # Cross-check every n up to 200 against the definition.
    bad = []
    for n in range(6, 201):
        k = st.median_interval(list(range(n)))["rank"]
        if not (st.binom_cdf_half(k - 1, n) <= 0.025 <
                st.binom_cdf_half(k, n)):
            bad.append(n)
    tap.check(not bad, "for n = 6..200 the rank is the largest k with "
              "P(Bin(n, 1/2) <= k - 1) <= 2.5 %", str(bad[:5]))


def test_coverage():
    # A skewed, heavy-ish tail like the lab's pair ratios: lognormal.
    # Its median is exp(mu); the interval must cover it in at least
    # 95 % of samples (the guarantee at n = 12 is 96.1 %).
    rng = random.Random(16)
    mu, sigma, n, runs = -0.01, 0.05, 12, 4000
    true_median = 2.718281828459045 ** mu
    hits = 0
    for _ in range(runs):
        iv = st.median_interval([rng.lognormvariate(mu, sigma)
                                 for _ in range(n)])
        hits += iv["lo"] <= true_median <= iv["hi"]
    tap.check(hits / runs >= 0.95,
              f"the interval covers a lognormal's median in >= 95 % of "
              f"{runs} seeded samples of {n}", f"{hits / runs:.4f}")


def test_contains_excludes():
    same = shuffled(normal_sample(20, 1.0, 0.003), 1)
    iv = st.median_interval(same)
    tap.check(iv["lo"] < 1.0 < iv["hi"],
              "no cost (median 1.000, sd 0.3 %, 20 blocks): the interval "
              "contains 1.00", str(iv))
    met, why = st.judge(statistics.median(same), iv, floor=0.995)
    tap.check(met is True and "includes 1.00" in why,
              "... and the target is met", why)
    cost = shuffled(normal_sample(20, 0.97, 0.003), 2)
    iv = st.median_interval(cost)
    tap.check(iv["hi"] < 1.0,
              "a 3 % cost (median 0.970): the interval excludes 1.00",
              str(iv))
    met, why = st.judge(statistics.median(cost), iv, floor=0.995)
    tap.check(met is False, "... and the target is missed", why)


def test_resolution():
    # A 0.5 % cost, block ratios with a 1 % spread.
    few = shuffled(normal_sample(6, 0.995, 0.01), 3)
    many = shuffled(normal_sample(60, 0.995, 0.01), 4)
    iv_few, iv_many = st.median_interval(few), st.median_interval(many)
    tap.check(iv_many["hi"] < 1.0 and
              st.judge(statistics.median(many), iv_many, floor=0.995)[1]
              != st.WIDE,
              "a 0.5 % cost with 60 blocks: the interval excludes 1.00 "
              "and is within ±1 % (resolved)", str(iv_many))
    tap.check(iv_few["lo"] <= 1.0 <= iv_few["hi"],
              "the same cost with 6 blocks: the interval still contains "
              "1.00 (not resolved)", str(iv_few))
    met, why = st.judge(statistics.median(few), iv_few, floor=0.995)
    tap.check(met is None and why == st.WIDE,
              "... and it is wider than ±1 %: no verdict", why)
    noisy = shuffled(normal_sample(60, 0.995, 0.05), 5)
    s = st.ratio_summary(noisy, [1.0] * 60, floor=0.995,
                         fallback="judged on exact counts")
    tap.check(s["met"] is None and s["verdict"] ==
              "interval wider than ±1 %: judged on exact counts",
              "a 5 % spread: 'interval wider than ±1 %: judged on exact "
              "counts'", str(s["verdict"]))


def test_drift():
    # Windows at t = 0, 1, 2, ...; the machine slows by 1 % per window
    # (rates) and CPU time per iteration grows by 1 % per window; the
    # fork costs exactly 1 %.
    pairs = 24

    def rate(build, t):
        return (0.99 if build == "fork" else 1.0) * 1e4 * (1 - 0.01 * t)

    def cpu(build, t):
        return (1 / 0.99 if build == "fork" else 1.0) * 500 * \
            (1 + 0.01 * t)

    def run(order):
        rates = {b: [] for b in st.BUILDS}
        cpus = {b: [] for b in st.BUILDS}
        for t, b in enumerate(order):
            rates[b].append(rate(b, t))
            cpus[b].append(cpu(b, t))
        return rates, cpus

    rates, cpus = run(st.flat_order(pairs))
    wall = st.ratio_summary(rates["fork"], rates["stock"], floor=0.995)
    per_cpu = st.ratio_summary(cpus["stock"], cpus["fork"], floor=0.995)
    tap.check(all(abs(r - 0.99) < 1e-12 for r in wall["blocks"]),
              "ABBA under a linear drift: every block's wall ratio is "
              "0.990 exactly", str(wall["blocks"][:3]))
    tap.check(all(abs(r - 0.99) < 1e-12 for r in per_cpu["blocks"]),
              "ABBA under a linear drift: every block's CPU ratio is "
              "0.990 exactly", str(per_cpu["blocks"][:3]))
    tap.check(abs(wall["hi"] - wall["lo"]) < 1e-12 and
              wall["met"] is False,
              "... a zero-width interval at 0.990, which excludes 1.00 "
              "and lies below 0.995: missed", str(wall))
    per_pair = [f / s for s, f in zip(rates["stock"], rates["fork"])]
    tap.check(max(per_pair) - min(per_pair) > 0.015,
              "the per-pair ratios of the same run carry the drift "
              "(+/- 1 %)", f"{min(per_pair):.4f} .. {max(per_pair):.4f}")
    rates, _ = run(["stock", "fork"] * pairs)
    abab = st.ratio_summary(rates["fork"], rates["stock"], floor=0.995)
    tap.check(abab["median"] < 0.99 - 0.01,
              "ABAB under the same drift: the fork looks more than 1 "
              "point slower than it is", f"{abab['median']:.4f}")


def test_judge():
    med = 1.0
    cases = [
        ({"lo": 0.996, "hi": 1.004}, {"floor": 0.995}, True),
        ({"lo": 0.9960, "hi": 0.9990}, {"floor": 0.995}, True),
        ({"lo": 0.9940, "hi": 0.9990}, {"floor": 0.995}, False),
        ({"lo": 0.981, "hi": 0.989}, {"floor": 0.98}, True),
        ({"lo": 0.975, "hi": 0.985}, {"floor": 0.98}, False),
        ({"lo": 1.002, "hi": 1.008}, {"ceiling": 1.01}, True),
        ({"lo": 1.005, "hi": 1.015}, {"ceiling": 1.01}, False),
        ({"lo": 0.980, "hi": 1.004}, {"floor": 0.995}, None),
        # wide, but wholly on one side of the target: decided
        ({"lo": 0.996, "hi": 1.018}, {"floor": 0.995}, True),
        ({"lo": 0.893, "hi": 0.912}, {"floor": 0.98}, False),
        ({"lo": 0.700, "hi": 0.950}, {"ceiling": 1.01}, True),
        ({"lo": 1.050, "hi": 1.300}, {"ceiling": 1.01}, False),
        # wide and across the target: no verdict
        ({"lo": 0.976, "hi": 1.019}, {"floor": 0.98}, None),
        ({"lo": 0.950, "hi": 1.080}, {"ceiling": 1.01}, None),
        (None, {"floor": 0.995}, None),
    ]
    for iv, kw, want in cases:
        m = med if iv is None else (iv["lo"] + iv["hi"]) / 2
        got, why = st.judge(m, iv, **kw)
        tap.check(got is want, f"judge {iv} {kw} -> {want}", f"{got}: {why}")


def test_growth():
    # stock, fork, twin (a second stock process), bound -> met
    cases = [
        ((40000, 40500, 40300), True),     # small growth, quiet twins
        ((40000, 42332, 40100), False),    # growth the twins resolve
        ((39632, 41964, 42100), None),     # twins differ by 2468 > 1024
        ((40000, 39000, 37000), None),     # a saving is no verdict either
        ((40000, None, 40000), None),
        ((40000, 41024, 41024), True),     # both at the bound
    ]
    for (stock, fork, twin), want in cases:
        got, why = st.judge_growth(stock, fork, twin, 1024)
        tap.check(got is want, f"growth stock {stock} fork {fork} twin "
                  f"{twin} -> {want}", f"{got}: {why}")


def test_blocks():
    tap.check(st.block_ratios([2, 2, 2], [1, 1, 1]) == [2.0],
              "a last pair without its partner is left out")
    tap.check(st.block_ratios([2, None, 3, 3], [1, 1, 1, 2]) == [2.0],
              "a block with a missing value is left out")
    s = st.ratio_summary([1.0], [1.0], ceiling=1.01,
                         fallback="judged on exact counts")
    tap.check(s["median"] is None and s["met"] is None and
              s["verdict"] == st.WIDE + ": judged on exact counts",
              "no block: no median, and no verdict, as for a wide "
              "interval", str(s))


def main():
    test_order()
    test_interval_ranks()
    test_coverage()
    test_contains_excludes()
    test_resolution()
    test_drift()
    test_judge()
    test_growth()
    test_blocks()
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
