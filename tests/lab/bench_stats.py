"""
bench_stats: the statistics of tests/lab/bench.py, in plain Python (the
host's /usr/bin/python3 on Debian 12 has no numpy), kept apart from the
harness so that tests/unit/test_bench_stats.py can check them without a
lab, a QEMU or a guest.

- abba_order(): the order of the measurement windows, stock and fork in
  ABBA blocks (stock, fork, fork, stock, ...).
- block_ratios(): one ratio per ABBA block, which cancels a drift that
  is linear in time.
- median_interval(): the distribution-free 95 % confidence interval of
  a median from order statistics (the sign test's interval).
- ratio_summary(): median, interval and verdict of one ratio metric.

The interval is the order-statistic one rather than a bootstrap: its
coverage holds for any distribution, however skewed (the lab's pair
ratios are), it needs no resampling and no seed, and the same data give
the same interval (docs/bench.rst, "Statistics").

SPDX-License-Identifier: GPL-2.0-or-later
"""

import math
import statistics

BUILDS = ("stock", "fork")
LEVEL = 0.95
# A ratio is judged on timing only where its interval stays within this
# much of its median on both sides; a wider one cannot tell a 0.5 % cost
# from none, so the exact counts decide instead (issue #16).
RESOLUTION = 0.01
WIDE = "interval wider than ±1 %"
COUNTS = ("judged on exact counts: tests/lab/test_syscalls.py asserts 0 "
          "extra syscalls and ioctls per KVM_RUN exit (docs/results.rst, "
          "\"System calls per exit\")")


def abba_order(pairs):
    """The builds of PAIRS pairs of windows, in the order they run: one
    (first, second) tuple per pair, stock first in even pairs and fork
    first in odd ones, so that two pairs make one block stock, fork,
    fork, stock.  Within a block both builds' windows sit, on average,
    at the same time, which ABAB (stock always first) never achieves."""
    return [BUILDS if i % 2 == 0 else BUILDS[::-1] for i in range(pairs)]


def flat_order(pairs):
    """abba_order() as the one list of windows that the raw JSON keeps."""
    return [b for pair in abba_order(pairs) for b in pair]


def block_ratios(num, den):
    """One ratio per ABBA block: the sum of NUM's two windows in the
    block over the sum of DEN's, NUM and DEN being per-pair values in
    run order.  If the quantity drifts linearly in time, each build's
    two windows in a block sum to twice its value at the block's middle,
    so the drift cancels exactly; a per-pair ratio would carry +drift in
    one pair and -drift in the next.  A last pair without its partner
    belongs to no block and is left out, and so is a block with a value
    missing (None) or a zero denominator."""
    out = []
    for i in range(0, min(len(num), len(den)) - 1, 2):
        pair = (num[i], num[i + 1], den[i], den[i + 1])
        if None not in pair and den[i] + den[i + 1] > 0:
            out.append((num[i] + num[i + 1]) / (den[i] + den[i + 1]))
    return out


def binom_cdf_half(k, n):
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly (integers until the
    one division)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2 ** n


def median_interval(values, level=LEVEL):
    """The distribution-free interval for the median of VALUES: the
    k-th smallest and k-th largest value, k the largest rank with
    P(Binomial(n, 1/2) <= k - 1) <= (1 - level) / 2.  Its coverage is
    at least LEVEL for any continuous distribution, and it is reported
    exactly (1 - 2 P(X <= k - 1)).  None when n is too small for any
    such k (n < 6 at 95 %: even the sample's own min and max would
    cover the median with less than 95 %)."""
    xs = sorted(values)
    n = len(xs)
    tail = (1 - level) / 2
    k = 0
    while k + 1 <= n // 2 and binom_cdf_half(k, n) <= tail:
        k += 1
    if k == 0:
        return None
    return {"lo": xs[k - 1], "hi": xs[n - k], "rank": k,
            "coverage": 1 - 2 * binom_cdf_half(k - 1, n)}


def judge_wide(lo, hi, floor, ceiling):
    """An interval wider than RESOLUTION decides only from one side."""
    if floor is not None and hi < floor:
        return False, f"interval wholly below {floor}"
    if floor is not None and lo >= floor:
        return True, f"interval above {floor}"
    if ceiling is not None and lo > ceiling:
        return False, f"interval wholly above {ceiling}"
    if ceiling is not None and hi <= ceiling:
        return True, f"interval below {ceiling}"
    return None, WIDE


def judge(median, interval, floor=None, ceiling=None):
    """met and a one-line verdict for a ratio.  Higher is better with a
    FLOOR (fork rates over stock's): met if the interval includes 1.00
    or lies wholly at or above FLOOR (issue #16's acceptance).  Lower is
    better with a CEILING (downtime): met if it includes 1.00 or lies
    at or below CEILING.  An interval that lies wholly on one side of
    the target decides however wide it is: a cost the timing resolves
    as a miss must not read as "no verdict".  Otherwise an interval
    wider than RESOLUTION on either side of the median, or none at all,
    gives no verdict (met None)."""
    if interval is None:
        # No interval at all (too few blocks) is as wide as it gets.
        return None, WIDE
    lo, hi = interval["lo"], interval["hi"]
    if median - lo > RESOLUTION or hi - median > RESOLUTION:
        return judge_wide(lo, hi, floor, ceiling)
    if floor is None and ceiling is None:
        return None, ""
    if lo <= 1.0 <= hi:
        return True, "interval includes 1.00"
    if floor is not None:
        if lo >= floor:
            return True, f"interval above {floor}"
        return False, f"interval reaches below {floor} and excludes 1.00"
    if hi <= ceiling:
        return True, f"interval below {ceiling}"
    return False, f"interval reaches above {ceiling} and excludes 1.00"


def verdict(median, interval, floor=None, ceiling=None, fallback=""):
    """judge() of a median that may not exist (no block at all is the
    widest interval of all); where a target gets no verdict from the
    timing, FALLBACK (what judges it instead) follows the reason."""
    met, why = (None, WIDE) if median is None \
        else judge(median, interval, floor, ceiling)
    if met is None and why and fallback and \
            (floor is not None or ceiling is not None):
        why = f"{why}: {fallback}"
    return met, why


def judge_growth(stock, fork, twin, bound):
    """met and a one-line verdict for the fork's growth over stock of a
    one-sample quantity (peak RSS), against BOUND.  TWIN is the same
    quantity of a second stock process that ran as long: two processes
    of one build differ by more than BOUND when the run cannot tell a
    growth of BOUND from noise, and then nothing is decided, a pass no
    more than a miss."""
    if None in (stock, fork, twin):
        return None, "a value is missing"
    noise = abs(twin - stock)
    if noise > bound:
        return None, (f"no verdict: two stock processes differ by {noise} "
                      f"(twin {twin}, stock {stock}), more than {bound}")
    delta = fork - stock
    if delta <= bound:
        return True, f"delta {delta}, stock twins differ by {noise}"
    return False, (f"delta {delta} above {bound}, stock twins differ by "
                   f"{noise}")


def ratio_summary(num, den, floor=None, ceiling=None, fallback="",
                  level=LEVEL):
    """The record of one ratio metric: the per-block ratios NUM/DEN
    (block_ratios), their median, its interval and the verdict.  Where
    a target gets no verdict from the timing, FALLBACK (what judges it
    instead) follows the reason."""
    blocks = block_ratios(num, den)
    interval = median_interval(blocks, level)
    median = statistics.median(blocks) if blocks else None
    met, why = verdict(median, interval, floor, ceiling, fallback)
    return {"blocks": blocks, "n": len(blocks),
            "median": median,
            "lo": interval["lo"] if interval else None,
            "hi": interval["hi"] if interval else None,
            "coverage": interval["coverage"] if interval else None,
            "met": met, "verdict": why}
