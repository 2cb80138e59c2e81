// Checks of positional heads and of what breaks over long contexts: thm-5.3-diagonal,
// thm-5.3-previous, thm-6.1, lemma-a.1 (see verify_checks.hpp).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "ropekit/analysis/key_construction.hpp"
#include "ropekit/rope/logit_curve.hpp"
#include "ropekit/verify/checks_internal.hpp"

namespace ropekit::checks {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Theorem 5.3 with psi of equal norm in every chunk: the smallest scale at N = 8192 (and at the
// paper's grid, the value derived from Theorem 5.3's proof, Sec. 5), then the real float32 head at
// N = 2048 built with attention.hpp must reach alpha >= 1 - eps at every position.
CheckResult head_check(const CheckGrid& g, const char* name, const HeadSpec& spec,
                       std::string extra_detail, bool extra_ok) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    const double eps = 0.01;
    const std::vector<double> psi(g.head_dim, 1.0);
    HeadOptions long_run;
    long_run.head = spec;
    long_run.tokens = 8192;
    long_run.epsilon = eps;
    const HeadScale at_8192 = build_head(psi, s, long_run).result.scale;
    bool ok = extra_ok;
    std::string detail = fmt::format("N=8192: smallest ||psi||^2 {:.4g}, sufficient bound {:.4g}",
                                     at_8192.scale_min, at_8192.scale_bound);
    if (spec.offset == 0 && g.head_dim == 256 &&
        g.theta == 1e4) {  // derived from Thm 5.3: 164.9 and 488
        const bool matches = std::abs(at_8192.scale_min - 164.9) < 0.05 &&
                             std::abs(at_8192.scale_bound - 488.2) < 0.5;
        ok = ok && matches;
        detail += matches ? " (derived from Thm 5.3, Sec. 5: 164.9, 488)"
                          : " (derived from Thm 5.3, Sec. 5: 164.9, 488: MISMATCH)";
    }
    HeadOptions built = long_run;
    built.tokens = 2048;
    const ConstructedHead head = build_head(psi, s, built);
    std::vector<float> scores(built.tokens * built.tokens), pattern(scores.size());
    const double min_alpha = head_pattern(head, scores.data(), pattern.data());
    ok = ok && min_alpha >= 1 - eps;
    return {name,
            fmt::format("{} head (q_i = psi, k_j = R^{} psi, equal chunk norms, eps={}) built in "
                        "float32 over N=2048 with attention.hpp at its smallest scale, d={}, "
                        "theta={:g}; min alpha_(i,i-{})",
                        spec.kind, spec.offset, eps, g.head_dim, g.theta, spec.offset),
            min_alpha,
            1 - eps,
            ok,
            detail + extra_detail};
}

}  // namespace

CheckResult thm_5_3_diagonal(const CheckGrid& g) {
    return head_check(g, "thm-5.3-diagonal", parse_head_spec("diagonal"), "", true);
}

// Also pins the sign: keys identical and the query rotated by +g (q = R^1 psi, k = psi) peaks at
// offset -1, the NEXT token; the previous-token head rotates the key instead.
CheckResult thm_5_3_previous(const CheckGrid& g) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    const std::vector<double> psi(g.head_dim, 1.0);
    const std::vector<std::int64_t> offsets{-3, -2, -1, 0, 1, 2, 3};
    const auto rotated = key_for_offset(psi, s, 1);
    const std::int64_t query_rotated =
        offsets[find_peak(offset_curve(rotated.data(), psi.data(), s, offsets)).argmax];
    const std::int64_t key_rotated =
        offsets[find_peak(offset_curve(psi.data(), rotated.data(), s, offsets)).argmax];
    const bool signs_ok = query_rotated == -1 && key_rotated == 1;
    return head_check(g, "thm-5.3-previous", parse_head_spec("previous"),
                      fmt::format("; sign: key rotated by +g peaks at offset {} (previous token), "
                                  "query rotated by +g at offset {} (next token){}",
                                  key_rotated, query_rotated, signs_ok ? "" : " WRONG"),
                      signs_ok);
}

// d = 2, one frequency g: a target key aligned with the query, n tokens back, against a
// non-target key delta = pi/4 off, at the query's own position. Scanning n finds the first
// distance where the target loses (alpha_target < 1/2); it must be ceil(delta / g): 1/g scaling.
CheckResult thm_6_1(const CheckGrid& g) {
    const Schedule full = make_schedule(g.head_dim, g.theta);
    const double delta = kPi / 4;
    const double q[2] = {1.0, 0.0};
    const double non_target[2] = {std::cos(delta), std::sin(delta)};
    double worst = 0;
    std::string detail;
    const std::size_t chunks = full.frequency_count();
    const std::size_t stride = std::max<std::size_t>(1, chunks / 8);
    std::vector<std::size_t> sampled;  // every stride-th chunk from the second, and the lowest
    for (std::size_t c = 1; c < chunks; c += stride) sampled.push_back(c);
    if (chunks > 1 && sampled.back() != chunks - 1) sampled.push_back(chunks - 1);
    for (std::size_t c : sampled) {
        Schedule one = make_schedule(2, g.theta);
        one.inv_freq = {full.inv_freq[c]};
        const double freq = one.inv_freq[0];
        const double rival = relative_logit(q, non_target, one, 0.0);
        long n = 1;
        while (relative_logit(q, q, one, -static_cast<double>(n)) >= rival && n < 100'000'000) ++n;
        const double steps = std::abs(static_cast<double>(n) - std::ceil(delta / freq));
        worst = std::max(worst, steps);
        if (c == sampled.front() || c == sampled.back()) {
            detail +=
                fmt::format("{}g={:.4g}: overtaken at n={} (n*g={:.4f})",
                            detail.empty() ? "" : "; ", freq, n, static_cast<double>(n) * freq);
        }
    }
    return {"thm-6.1",
            fmt::format("d=2, one frequency g (every {}th of d={}, theta={:g}, and the lowest): "
                        "first distance at "
                        "which a key pi/4 off beats an aligned target; max |n - ceil(delta/g)| "
                        "(the 1/g law, exact up to the token grid)",
                        stride, g.head_dim, g.theta),
            worst,
            1.0,
            worst <= 1.0,
            detail};
}

Approach closest_approach_to_2pi(double g, long max_n) {
    // 2 pi as a double-double: hi + lo with |lo| < ulp(hi) / 2.
    const double two_pi_hi = 6.283185307179586, two_pi_lo = 2.4492935982947064e-16;
    Approach best{HUGE_VAL, 0};
    for (long n = 1; n <= max_n; ++n) {
        const double x = static_cast<double>(n);
        const double p = x * g, e = std::fma(x, g, -p);  // n g = p + e exactly
        const double m = std::nearbyint(p / two_pi_hi);
        const double r = std::fma(-m, two_pi_hi, p) + e - m * two_pi_lo;
        if (std::abs(r) < best.distance) best = {std::abs(r), n};
    }
    return best;
}

// Lemma A.1: n g_k is never a multiple of 2 pi for n != 0. Scanned for 0 < n <= 1e6 (|n| by
// symmetry) at every nonzero frequency of the schedule, reporting the closest approach.
CheckResult lemma_a_1(const CheckGrid& g) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    const long max_n = 1'000'000;
    Approach best{HUGE_VAL, 0};
    std::size_t best_chunk = 0;
    for (std::size_t c = 0; c < s.frequency_count(); ++c) {
        const Approach a = closest_approach_to_2pi(s.inv_freq[c], max_n);
        if (a.distance < best.distance) best = a, best_chunk = c;
    }
    // g_k is a double, within 1.2e-16 relative of theta^(-2k/d); at n <= 1e6 (n g <= 1e6 rad)
    // that moves n g by <= 1.2e-10 rad, and the reduction adds ~1e-15. A closest approach above
    // 1e-9 rad therefore proves the true frequencies miss every multiple of 2 pi as well.
    const double tol = 1e-9;
    return {
        "lemma-a.1",
        fmt::format("n*g_k never within tolerance of a multiple of 2 pi for 0 < |n| <= 1e6, all "
                    "{} frequencies, d={}, theta={:g}; closest approach in rad (tolerance = "
                    "what float64 frequencies can resolve)",
                    s.frequency_count(), g.head_dim, g.theta),
        best.distance,
        tol,
        best.distance > tol,
        fmt::format("closest at chunk {} (1-based, g={:.6g}), n={}", best_chunk + 1,
                    s.inv_freq[best_chunk], best.n)};
}

}  // namespace ropekit::checks
