// Checks of where RoPE attention can peak and whether it decays: prop-3.1, prop-3.2, fig-2a,
// prop-5.2 (see verify_checks.hpp).
#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/analysis/key_construction.hpp"
#include "ropekit/rope/logit_curve.hpp"
#include "ropekit/verify/checks_internal.hpp"

namespace ropekit::checks {

// k = R^r q peaks at offset r (and only there) for random q and r.
CheckResult prop_3_1(const CheckGrid& g) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    const std::int64_t window = 4096;
    const OffsetTrig table(s, offset_range(window));
    std::mt19937_64 rng(31);
    std::uniform_int_distribution<std::int64_t> pick(0, window - 1);
    const int trials = 100;
    int wrong = 0;
    std::vector<double> margins, coeffs(2 * s.frequency_count());
    for (int t = 0; t < trials; ++t) {
        const auto q = gaussian_vector(rng, g.head_dim);
        const std::int64_t r = pick(rng);
        const auto k = key_for_offset(q, s, r);
        const CurvePeak peak = find_peak(
            table.curve(coeffs.data(), pair_coefficients(q.data(), k.data(), s, coeffs.data())));
        if (static_cast<std::int64_t>(peak.argmax) != r) ++wrong;
        margins.push_back(peak.margin);
    }
    std::sort(margins.begin(), margins.end());
    const double worst = wrong ? 0.0 : margins.front();
    return {"prop-3.1",
            fmt::format("k = R^r q peaks exactly at offset r: {} Gaussian q, r uniform in "
                        "[0, {}), offsets 0..{}, d={}, theta={:g}; smallest margin "
                        "1 - runner-up/peak (must be > 0)",
                        trials, window, window - 1, g.head_dim, g.theta),
            worst,
            0.0,
            wrong == 0 && worst > 0,
            fmt::format("{} wrong argmax; margins min {:.3g}, median {:.3g}", wrong,
                        margins.front(), margins[margins.size() / 2])};
}

// Gaussian q, k: mean 0 and the same spread at every offset (Monte Carlo, --check's rule).
CheckResult prop_3_2(const CheckGrid& g) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    const std::size_t samples = 4000;
    const DecayCurve c = gaussian_decay(s, parse_offsets("0-10,20-5000:20"), samples, 32, {}, true);
    const DecayCheck check = check_no_decay(c, 1e-3);
    double worst_std = 0;  // derived: std of q^T R^r k / d is 1/sqrt(d) at every r
    for (double sd : c.std) {
        worst_std = std::max(worst_std, std::abs(sd * std::sqrt(double(g.head_dim)) - 1.0));
    }
    // Relative standard error of a sample std of q^T k: sqrt((2 + 6/d) / M) / 2; allow 6 of them.
    const double std_tol = 3.0 * std::sqrt((2.0 + 6.0 / double(g.head_dim)) / double(samples));
    const bool std_ok = worst_std <= std_tol;
    return {"prop-3.2",
            fmt::format("Gaussian q, k: |mean| <= z*stderr at all {} offsets 0..5000 and equal "
                        "spread (Bonferroni, alpha 1e-3), {} pairs, d={}, theta={:g}; max "
                        "|mean|/stderr vs critical z",
                        c.offsets.size(), samples, g.head_dim, g.theta),
            std::max(check.max_mean_z, check.max_spread_z),
            check.z_critical,
            check.passed && std_ok,
            describe_decay_check(check) +
                fmt::format("; max |std*sqrt(d) - 1| = {:.3g} (derived: 0; allowed {:.3g})",
                            worst_std, std_tol)};
}

// Figure 2a: all-ones q = k, closed form against the values read off the paper's Figure 2a.
CheckResult fig_2a(const CheckGrid& g) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    const auto& offsets = figure_2a_offsets();
    const DecayCurve c = ones_decay(s, offsets);
    const bool paper_grid = g.head_dim == 256 && g.theta == 1e4;
    double worst = 0;
    std::string values;
    if (paper_grid) {
        const double printed[] = {1.0, 0.972, 0.675, 0.456, 0.193, -0.029};
        for (std::size_t i = 0; i < offsets.size(); ++i) {
            worst = std::max(worst, std::abs(c.activation[i] - printed[i]));
        }
    } else {  // no printed values here: closed form against explicit rotation of ones
        const std::vector<double> ones(g.head_dim, 1.0);
        for (std::size_t i = 0; i < offsets.size(); ++i) {
            std::vector<double> k = ones;
            rotate(k.data(), s, -static_cast<double>(offsets[i]));
            double dot = 0;
            for (double x : k) dot += x;
            worst = std::max(worst, std::abs(c.activation[i] - dot / double(g.head_dim)));
        }
    }
    for (double a : c.activation) values += fmt::format("{}{:.3f}", values.empty() ? "" : ", ", a);
    const double tol = paper_grid ? 5e-4 : 1e-12;
    return at_most(
        "fig-2a",
        paper_grid
            ? fmt::format("all-ones q = k, (2/d) sum cos(o g) at offsets 0, 1, 10, 100, "
                          "1000, 5000 vs the values of the paper's Figure 2a (Sec. 3), d=256, "
                          "theta=1e4; "
                          "max |difference| (printed to 3 decimals)")
            : fmt::format("all-ones q = k, closed form vs explicit rotation at offsets 0, "
                          "1, 10, 100, 1000, 5000, d={}, theta={:g}; max |difference|",
                          g.head_dim, g.theta),
        worst, tol, "values " + values);
}

// NoPE on [bos, x, x]: the two x keys are equal, so alpha_{3,3} = alpha_{3,2} < 1/2 whatever the
// weights.
CheckResult prop_5_2(const CheckGrid& g) {
    const Schedule nope = apply_prope(make_schedule(g.head_dim, g.theta), 0.0);
    const std::size_t model = 32;
    std::mt19937_64 rng(52);
    std::uniform_real_distribution<double> log_scale(-3.0, 2.0);
    const int trials = 2000;
    double worst = 0, smallest_log_gap = HUGE_VAL;
    int unequal = 0;
    for (int t = 0; t < trials; ++t) {
        const double scale = std::pow(10.0, log_scale(rng)) / std::sqrt(double(model));
        const auto wq = gaussian_vector(rng, g.head_dim * model),
                   wk = gaussian_vector(rng, g.head_dim * model);
        const auto bos = gaussian_vector(rng, model), x = gaussian_vector(rng, model);
        auto project = [&](const std::vector<double>& w, const std::vector<double>& e) {
            std::vector<double> out(g.head_dim, 0.0);
            for (std::size_t r = 0; r < g.head_dim; ++r) {
                for (std::size_t c = 0; c < model; ++c) out[r] += scale * w[r * model + c] * e[c];
            }
            return out;
        };
        const auto q3 = project(wq, x);
        const std::vector<std::vector<double>> keys{project(wk, bos), project(wk, x),
                                                    project(wk, x)};
        double logits[3], logits_raw[3], peak = -HUGE_VAL, total = 0;
        for (int j = 0; j < 3; ++j) {
            logits[j] = logits_raw[j] =
                relative_logit(q3.data(), keys[j].data(), nope, double(j - 2));
            peak = std::max(peak, logits[j]);
        }
        for (double& l : logits) total += (l = std::exp(l - peak));
        const double a32 = logits[1] / total, a33 = logits[2] / total;
        if (a32 != a33) ++unequal;
        // 1/2 - alpha_33 = e^D / (2 (2 + e^D)), D = a_31 - a_33, in log10 (exact even when
        // alpha_33 rounds to 1/2).
        const double gap = logits_raw[0] - logits_raw[2];
        const double log_two_plus = gap > 0 ? gap + std::log1p(2 * std::exp(-gap))
                                            : std::log(2.0) + std::log1p(std::exp(gap) / 2);
        const double log_gap = (gap - std::log(2.0) - log_two_plus) / std::log(10.0);
        smallest_log_gap = std::min(smallest_log_gap, log_gap);
        worst = std::max(worst, a33);
    }
    return {"prop-5.2",
            fmt::format("NoPE on [bos, x, x]: alpha_33 < 1/2 for {} random W_q, W_k, embeddings "
                        "and scales 1e-3..1e2, d={}; max alpha_33 (1/2 is reached only when "
                        "exp(a_31 - a_33) underflows)",
                        trials, g.head_dim),
            worst,
            0.5,
            worst <= 0.5 && unequal == 0,
            fmt::format("{} trials with alpha_32 != alpha_33; smallest 1/2 - alpha_33 = 10^{:.1f}",
                        unequal, smallest_log_gap)};
}

}  // namespace ropekit::checks
