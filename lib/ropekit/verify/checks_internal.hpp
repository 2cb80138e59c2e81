#pragma once
// The individual checks behind all_checks() (verify.hpp), grouped by topic:
//   verify.cpp          rope-relative, layout-equivalence, prope-endpoints (the RoPE machinery)
//   verify_decay.cpp    prop-3.1, prop-3.2, fig-2a, prop-5.2 (where attention can and cannot peak)
//   verify_heads.cpp    thm-5.3-diagonal, thm-5.3-previous, thm-6.1, lemma-a.1
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "ropekit/verify/verify.hpp"

namespace ropekit::checks {

CheckResult prop_3_1(const CheckGrid& g);
CheckResult prop_3_2(const CheckGrid& g);
CheckResult fig_2a(const CheckGrid& g);
CheckResult prop_5_2(const CheckGrid& g);
CheckResult thm_5_3_diagonal(const CheckGrid& g);
CheckResult thm_5_3_previous(const CheckGrid& g);
CheckResult thm_6_1(const CheckGrid& g);
CheckResult lemma_a_1(const CheckGrid& g);

// n independent standard normal values.
std::vector<double> gaussian_vector(std::mt19937_64& rng, std::size_t n);

// A check that passes when the measured worst error is at most the tolerance.
CheckResult at_most(std::string name, std::string what, double worst, double tolerance,
                    std::string detail = "");

// Closest approach of n * g to a multiple of 2 pi over 0 < n <= max_n, with the n reaching it.
// n * g is split exactly (two-product) and 2 pi is a double-double, so the error is ~1e-15 rad.
struct Approach {
    double distance = 0;
    long n = 0;
};
Approach closest_approach_to_2pi(double g, long max_n);

}  // namespace ropekit::checks
