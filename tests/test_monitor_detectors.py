"""Change detectors on series with known changes: they fire at a step and not before, stay
quiet on noise, never look ahead, skip NaN, and CUSUM adds up a small persistent shift."""

from __future__ import annotations

import numpy as np
import pytest

from domainfit.apps.monitor.detectors import DETECTORS, cusum, detect, ewma_zscore, rolling_zscore


def _alternating(n: int) -> np.ndarray:
    """+1, -1, +1, ...: a baseline with a standard deviation of exactly about 1."""
    return np.tile([1.0, -1.0], n // 2 + 1)[:n]


@pytest.mark.parametrize("name", ["zscore", "ewma"])
def test_a_five_sigma_step_fires_at_its_index_and_not_before(name):
    x = _alternating(80) + 10.0
    x[50:] += 5.0
    z = detect(name, x)
    assert z[50] > 4
    assert np.nanmax(z[:50]) < 2
    assert np.isnan(z[:6]).all() and not np.isnan(z[6:]).any()
    assert cusum(x)[50] > 4 and np.nanmax(cusum(x)[:50]) < 1


def test_noise_alone_stays_quiet():
    x = np.random.default_rng(0).normal(50.0, 2.0, 20_000)
    for name, level in [("zscore", 3), ("ewma", 3), ("cusum", 5)]:
        stat = detect(name, x)
        stat = stat[~np.isnan(stat)]
        assert np.mean(stat < level) > 0.99, name


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_detectors_are_causal(name):
    x = np.random.default_rng(1).normal(0.0, 1.0, 120)
    x[60:] += 3.0
    x[[10, 61, 62, 90]] = np.nan
    full = detect(name, x)
    for t in range(len(x)):
        np.testing.assert_array_equal(detect(name, x[:t + 1]), full[:t + 1])


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_nan_positions_give_nan_and_are_skipped_in_baselines(name):
    x = np.random.default_rng(2).normal(0.0, 1.0, 60)
    gaps = [20, 21, 35]
    x[gaps] = np.nan
    stat = detect(name, x)
    assert np.isnan(stat[gaps]).all()
    assert np.isfinite(stat[22:35]).all() and np.isfinite(stat[36:]).all()
    x[40] = np.nan
    assert np.isfinite(detect(name, x)[41:]).all()  # one gap does not poison what follows


def test_ewma_skips_nan_as_if_the_window_were_absent():
    x = np.random.default_rng(3).normal(5.0, 1.0, 50)
    with_gaps = np.insert(x, [10, 30], np.nan)
    kept = ~np.isnan(with_gaps)
    np.testing.assert_allclose(ewma_zscore(with_gaps)[kept], ewma_zscore(x))


def test_rolling_zscore_values_and_the_flat_baseline_floor():
    z = rolling_zscore([1, 2, 1, 2, 1, 2, 9])
    assert z[-1] == pytest.approx(7.5 / np.sqrt(0.3))  # mean 1.5, sample std sqrt(0.3)
    flat = rolling_zscore([100.0] * 10 + [101.0])
    assert flat[-1] == pytest.approx(1.0)  # std floored at 1% of the mean level, not 0
    assert np.isfinite(rolling_zscore([0.0] * 10 + [1.0])[-1])


def test_cusum_adds_up_a_small_persistent_shift_that_z_scores_miss():
    caught, false_alarm, z_quiet = [], [], []
    for seed in range(300):
        x = np.random.default_rng(seed).normal(0.0, 1.0, 72)
        x[60:70] += 1.0  # one standard deviation for 10 windows
        s, z = cusum(x), rolling_zscore(x)
        caught.append(s[60:70].max() > 4)
        false_alarm.append(s[50:60].max() > 4)
        z_quiet.append(np.mean(z[60:70] < 3))
    assert np.mean(caught) > 0.45 and np.mean(false_alarm) < 0.12
    assert np.mean(z_quiet) > 0.95


def test_a_fall_is_detected_by_negating_the_series():
    x = _alternating(60) * 0.1 + 0.2
    x[40:] -= 0.6  # six standard deviations
    assert rolling_zscore(x)[40] < -4 and detect("zscore", -x)[40] > 4


def test_bad_names_and_parameters_are_refused():
    with pytest.raises(ValueError, match="cusum, ewma, zscore"):
        detect("spike", [1.0, 2.0])
    with pytest.raises(ValueError, match="min_periods"):
        rolling_zscore([1.0], window=4, min_periods=6)
    with pytest.raises(ValueError, match="alpha"):
        ewma_zscore([1.0], alpha=1.5)
    with pytest.raises(ValueError, match="one-dimensional"):
        cusum(np.zeros((3, 3)))
    assert detect("cusum", []).shape == (0,)
