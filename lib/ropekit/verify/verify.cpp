#include "ropekit/verify/verify.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/rope/rope.hpp"
#include "ropekit/verify/checks_internal.hpp"

namespace ropekit {

namespace checks {

std::vector<double> gaussian_vector(std::mt19937_64& rng, std::size_t n) {
    std::normal_distribution<double> normal;
    std::vector<double> v(n);
    for (double& x : v) x = normal(rng);
    return v;
}

CheckResult at_most(std::string name, std::string what, double worst, double tolerance,
                    std::string detail) {
    return {std::move(name), std::move(what),    worst,
            tolerance,       worst <= tolerance, std::move(detail)};
}

}  // namespace checks

namespace {

using checks::at_most;
using checks::gaussian_vector;

// (R^i q)^T (R^j k) = q^T R^(j-i) k, for positions up to 1e6.
CheckResult rope_relative(const CheckGrid& g) {
    const Schedule s = make_schedule(g.head_dim, g.theta);
    std::mt19937_64 rng(1);
    std::uniform_int_distribution<long> position(0, 1'000'000);
    double worst = 0;
    for (int trial = 0; trial < 200; ++trial) {
        auto q = gaussian_vector(rng, g.head_dim), k = gaussian_vector(rng, g.head_dim);
        const double i = static_cast<double>(position(rng)), j = static_cast<double>(position(rng));
        const double expected = relative_logit(q.data(), k.data(), s, j - i);
        rotate(q.data(), s, i);
        rotate(k.data(), s, j);
        double absolute = 0;
        for (std::size_t d = 0; d < g.head_dim; ++d) absolute += q[d] * k[d];
        worst = std::max(worst, std::abs(absolute - expected) / static_cast<double>(g.head_dim));
    }
    const double tol = 1e-9;
    return at_most(
        "rope-relative",
        fmt::format("(R^i q)^T (R^j k) = q^T R^(j-i) k, 200 Gaussian pairs, i, j <= 1e6, d={}, "
                    "theta={:g}; max |difference| / d",
                    g.head_dim, g.theta),
        worst, tol);
}

// Half-split and interleaved layouts give the same logits once dims are permuted.
CheckResult layout_equivalence(const CheckGrid& g) {
    const Schedule half = make_schedule(g.head_dim, g.theta, Layout::half);
    const Schedule inter = make_schedule(g.head_dim, g.theta, Layout::interleaved);
    std::mt19937_64 rng(2);
    double worst = 0;
    for (int trial = 0; trial < 100; ++trial) {
        const auto q = gaussian_vector(rng, g.head_dim), k = gaussian_vector(rng, g.head_dim);
        std::vector<double> qi(g.head_dim), ki(g.head_dim);
        for (std::size_t c = 0; c < half.frequency_count(); ++c) {
            const auto [ha, hb] = half.chunk_dims(c);
            const auto [ia, ib] = inter.chunk_dims(c);
            qi[ia] = q[ha], qi[ib] = q[hb], ki[ia] = k[ha], ki[ib] = k[hb];
        }
        const double n = static_cast<double>(trial * 997 - 50'000);
        const double a = relative_logit(q.data(), k.data(), half, n);
        const double b = relative_logit(qi.data(), ki.data(), inter, n);
        worst = std::max(worst, std::abs(a - b));
    }
    const double tol = 1e-12;
    return at_most(
        "layout-equivalence",
        fmt::format("half-split and interleaved logits agree after the dim permutation, 100 "
                    "pairs, d={}, theta={:g}; max |difference|",
                    g.head_dim, g.theta),
        worst, tol);
}

// p = 0 is NoPE, p = 1 is RoPE, 0 < p < 1 keeps exactly floor(p d/2) of the highest frequencies.
CheckResult prope_endpoints(const CheckGrid& g) {
    const Schedule rope = make_schedule(g.head_dim, g.theta);
    const std::size_t n = rope.frequency_count();
    std::size_t failures = 0;
    std::mt19937_64 rng(3);
    const auto q = gaussian_vector(rng, g.head_dim), k = gaussian_vector(rng, g.head_dim);
    double nope_dot = 0;
    for (std::size_t d = 0; d < g.head_dim; ++d) nope_dot += q[d] * k[d];
    const Schedule nope = apply_prope(rope, 0.0), full = apply_prope(rope, 1.0);
    for (double offset : {1.0, 17.0, 4096.0}) {
        if (std::abs(relative_logit(q.data(), k.data(), nope, offset) - nope_dot) > 1e-9)
            ++failures;
        if (relative_logit(q.data(), k.data(), full, offset) !=
            relative_logit(q.data(), k.data(), rope, offset)) {
            ++failures;
        }
    }
    for (double p : {0.1, 0.25, 0.5, 0.75, 0.9}) {
        const auto kept = apply_prope(rope.inv_freq, p);
        const std::size_t m =
            static_cast<std::size_t>(std::floor(p * static_cast<double>(n) + 1e-9));
        for (std::size_t c = 0; c < n; ++c) {
            if (c < m ? kept[c] != rope.inv_freq[c] : kept[c] != 0.0) ++failures;
        }
    }
    return {"prope-endpoints",
            fmt::format("p=0 equals NoPE, p=1 equals RoPE, p in (0,1) keeps exactly floor(p*d/2) "
                        "highest frequencies, d={}, theta={:g}; failures",
                        g.head_dim, g.theta),
            static_cast<double>(failures),
            0,
            failures == 0,
            ""};
}

}  // namespace

const std::vector<NamedCheck>& all_checks() {
    static const std::vector<NamedCheck> checks = {
        {"rope-relative", rope_relative, "<=", "RoPE's relative property, Sec. 2"},
        {"layout-equivalence", layout_equivalence, "<=", "chunk layouts, Sec. 2"},
        {"prope-endpoints", prope_endpoints, "<=", "p-RoPE, Sec. 6"},
        {"prop-3.1", checks::prop_3_1, ">", "Prop 3.1, Sec. 3"},
        {"prop-3.2", checks::prop_3_2, "<=", "Prop 3.2, Sec. 3"},
        {"fig-2a", checks::fig_2a, "<=", "Figure 2a, Sec. 3"},
        {"prop-5.2", checks::prop_5_2, "<=", "Prop 5.2, Sec. 5"},
        {"thm-5.3-diagonal", checks::thm_5_3_diagonal, ">=", "Thm 5.3, Sec. 5"},
        {"thm-5.3-previous", checks::thm_5_3_previous, ">=", "Thm 5.3, Sec. 5"},
        {"thm-6.1", checks::thm_6_1, "<=", "Thm 6.1, Sec. 6"},
        {"lemma-a.1", checks::lemma_a_1, ">", "Lemma A.1, App. A"},
    };
    return checks;
}

std::vector<CheckResult> run_checks(const std::vector<CheckGrid>& grid,
                                    const std::vector<std::string>& names,
                                    const std::function<void(const CheckResult&)>& done) {
    for (const auto& name : names) {
        const auto& all = all_checks();
        if (std::none_of(all.begin(), all.end(),
                         [&](const NamedCheck& c) { return c.name == name; })) {
            std::vector<std::string> valid;
            for (const NamedCheck& c : all) valid.push_back(c.name);
            throw usage_error(fmt::format("--check: unknown check '{}'; the checks are {}", name,
                                          fmt::join(valid, ", ")));
        }
    }
    std::vector<CheckResult> results;
    for (const CheckGrid& point : grid) {
        for (const auto& check : all_checks()) {
            if (!names.empty() &&
                std::find(names.begin(), names.end(), check.name) == names.end()) {
                continue;
            }
            CheckResult r = check.run(point);
            r.head_dim = point.head_dim;
            r.theta = point.theta;
            r.holds_when = check.holds_when;
            r.cites = check.cites;
            if (done) done(r);
            results.push_back(std::move(r));
        }
    }
    return results;
}

namespace {

// The quantity a check measures: the end of its `what`, after the last ';', without the
// parenthesised explanation (the verbose report keeps the whole text).
std::string measured_quantity(const std::string& what) {
    const std::size_t semicolon = what.rfind(';');
    std::string q = semicolon == std::string::npos ? what : what.substr(semicolon + 2);
    if (const std::size_t paren = q.find(" ("); paren != std::string::npos) q.resize(paren);
    return q;
}

}  // namespace

std::string format_check_report(const std::vector<CheckResult>& results, bool verbose) {
    std::string out;
    std::size_t held = 0;
    for (const auto& r : results) {
        held += r.passed ? 1 : 0;
        out +=
            fmt::format("{} {:<18} d={:<3} theta={:<7g} {}: {:.6g} {} {:g}  ({})\n",
                        r.passed ? "PASS" : "FAIL", r.name, r.head_dim, r.theta,
                        measured_quantity(r.what), r.measured, r.holds_when, r.tolerance, r.cites);
        if (verbose) {
            out += "     " + r.what + "\n";
            if (!r.detail.empty()) out += "     " + r.detail + "\n";
        }
    }
    out += fmt::format("rope-verify: {} of {} checks hold\n", held, results.size());
    return out;
}

std::string format_check_json(const std::vector<CheckResult>& results) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : results) {
        rows.push_back({{"name", r.name},
                        {"head_dim", r.head_dim},
                        {"theta", r.theta},
                        {"passed", r.passed},
                        {"measured", r.measured},
                        {"holds_when", r.holds_when},
                        {"tolerance", r.tolerance},
                        {"what", r.what},
                        {"detail", r.detail},
                        {"cites", r.cites}});
    }
    return rows.dump(2) + "\n";
}

}  // namespace ropekit
