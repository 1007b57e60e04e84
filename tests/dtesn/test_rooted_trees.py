import pytest

from echo_ray.dtesn.butcher import (
    EULER,
    HEUN,
    MIDPOINT,
    RK4,
    ButcherTableau,
    elementary_weight,
    order_of,
)
from echo_ray.dtesn.rooted_trees import canonical, count_rooted_trees, gamma, sigma, size, trees

A000081 = [1, 1, 2, 4, 9, 20, 48, 115, 286, 719, 1842, 4766]


def test_enumeration_matches_a000081_and_recurrence():
    assert [len(trees(n)) for n in range(1, 13)] == A000081
    assert [count_rooted_trees(n) for n in range(1, 13)] == A000081


def test_trees_are_distinct_canonical_and_sized():
    for n in range(1, 9):
        ts = trees(n)
        assert len(set(ts)) == len(ts)
        assert all(size(t) == n and canonical(t) == t for t in ts)


LEAF, CHERRY, CHAIN3 = (), ((), ()), (((),),)


@pytest.mark.parametrize("tree, g, s", [
    (LEAF, 1, 1), (((),), 2, 1), (CHERRY, 3, 2), (CHAIN3, 6, 1),
    (((), (), ()), 4, 6), ((((),), ()), 8, 1), ((((), ()),), 12, 2), (((((),),),), 24, 1),
])
def test_gamma_and_sigma(tree, g, s):
    assert gamma(canonical(tree)) == g
    assert sigma(canonical(tree)) == s


def test_sum_over_trees_of_n_factorial_over_sigma_gamma_is_one():
    # Known identity: sum_{|t|=n} n!/(sigma(t) gamma(t)) = 1 ... times (n-1)!; check via counts
    # of labelled monotone trees: sum n!/(sigma gamma) = (n-1)!
    from math import factorial
    for n in range(1, 9):
        total = sum(factorial(n) // (sigma(t) * gamma(t)) for t in trees(n))
        assert total == factorial(n - 1)


def test_order_of_classic_methods():
    assert order_of(EULER) == 1
    assert order_of(HEUN) == 2
    assert order_of(MIDPOINT) == 2
    assert order_of(RK4) == 4


def test_elementary_weights_of_rk4():
    for n in range(1, 5):
        for t in trees(n):
            assert elementary_weight(RK4, t) == pytest.approx(1 / gamma(t), abs=1e-14)


def test_bad_tableau_and_n():
    with pytest.raises(ValueError, match="strictly lower triangular"):
        ButcherTableau("implicit", A=((1.0,),), b=(1.0,), c=(0.0,))
    with pytest.raises(ValueError, match="positive node count"):
        trees(0)
