"""The edge-quality ground truth (tools/edgeset.py): exact composites, fractional hair, metrics that rank."""

import numpy as np
import pytest
from edgeset import case_specs, composite, edge_band, make_case, scores


@pytest.fixture(scope="module")
def cases():
    return [make_case(*spec) for spec in case_specs(quick=True)]


def test_the_set_has_the_sizes_and_kinds_the_benchmark_needs():
    specs = case_specs()
    assert len(specs) >= 24 and len(set(specs)) == len(specs)
    sizes = {s[2] for s in specs}
    assert {1024, 2048} <= sizes and {"strands", "photo"} == {s[0] for s in specs}
    assert {"photo", "flat", "texture"} == {s[3] for s in specs}


def test_every_case_is_an_exact_composite_with_fractional_edges(cases):
    for case in cases:
        assert np.array_equal(case.image, composite(case.alpha, case.foreground, case.background))
        assert 0 <= case.alpha.min() and case.alpha.max() <= 1 and case.image.dtype == np.float32
        soft = (case.alpha > 0.02) & (case.alpha < 0.98)
        assert soft.mean() > 0.01, f"{case.name}: too few partly transparent pixels for an edge benchmark"
    strands = cases[0]
    assert len(np.unique(np.round(strands.alpha[(strands.alpha > 0) & (strands.alpha < 1)], 3))) > 50


def test_the_set_is_deterministic():
    a, b = make_case("strands", 1, 128, "texture"), make_case("strands", 1, 128, "texture")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.alpha, b.alpha)
    assert not np.array_equal(a.alpha, make_case("strands", 2, 128, "texture").alpha)


def test_metrics_are_zero_for_the_truth_and_rank_worse_estimates(cases):
    case = cases[0]
    perfect = scores(case, case.alpha, case.foreground)
    assert all(v == 0 for v in perfect.values())
    hard = (case.alpha > 0.5).astype(np.float32)  # a binary mask: what a plain segmenter gives
    worse = scores(case, hard, case.foreground)
    assert worse["band_sad"] > 0 and worse["band_mse"] > 0 and worse["band_grad"] > 0 and worse["band_composite"] > 0
    # the true alpha with the photo's own colours (the old background left in every soft pixel): only the
    # composite error sees it, which is why the benchmark needs it
    naive = scores(case, case.alpha, case.image)
    assert naive["band_sad"] == 0 and naive["band_composite"] > 1e-4
    assert worse["band_sad"] == pytest.approx(worse["sad"])  # every alpha error lies in the edge band
    band = edge_band(case.alpha)  # the band leaves out the solid body and the clear background
    assert (~band & (case.alpha == 1)).any() and (~band & (case.alpha == 0)).any()
