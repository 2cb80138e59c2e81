#include <doctest/doctest.h>

#include <cmath>

#include "ropekit/core/error.hpp"
#include "ropekit/verify/checks_internal.hpp"
#include "ropekit/verify/verify.hpp"

using namespace ropekit;

TEST_CASE("closest approach of n*g to a multiple of 2 pi") {
    // g = 1: the best n <= 1000 is 710 = 113 * 2 pi + 6.03e-5 (710/113 approximates 2 pi).
    const checks::Approach a = checks::closest_approach_to_2pi(1.0, 1000);
    CHECK(a.n == 710);
    CHECK(a.distance == doctest::Approx(710.0 - 113.0 * 2.0 * M_PI).epsilon(1e-9));
    // g = 2 pi / 7 (rounded to double) returns to 0 after 7 steps, up to the rounding of g.
    const checks::Approach b = checks::closest_approach_to_2pi(2.0 * M_PI / 7.0, 100);
    CHECK(b.n == 7);
    CHECK(b.distance < 1e-14);
}

TEST_CASE("run_checks runs the named checks at each grid point and refuses unknown names") {
    const auto results = run_checks({{64, 100.0}, {32, 1e4}}, {"fig-2a", "prope-endpoints"});
    REQUIRE(results.size() == 4);
    CHECK(results[0].name == "prope-endpoints");  // all_checks() order, not the request's
    CHECK(results[1].name == "fig-2a");
    CHECK(results[2].head_dim == 32);
    CHECK(results[2].theta == 1e4);
    for (const auto& r : results) CHECK(r.passed);
    CHECK_THROWS_AS(run_checks({{64, 100.0}}, {"no-such-check"}), Error);
    CHECK(format_check_json(results).find("\"head_dim\": 32") != std::string::npos);
}

TEST_CASE("the report: one short line per check, details only when verbose, a final count") {
    CheckResult held{"fig-2a", "all-ones q = k, d=256; max |difference| (printed to 3 decimals)",
                     4.76e-4,  5e-4,
                     true,     "values 1.000, 0.972",
                     256,      1e4,
                     "<=",     "Figure 2a, Sec. 3"};
    CheckResult failed = held;
    failed.name = "lemma-a.1";
    failed.passed = false;
    const std::string report = format_check_report({held, failed}, false);
    CHECK(report ==
          "PASS fig-2a             d=256 theta=10000   max |difference|: 0.000476 <= 0.0005  "
          "(Figure 2a, Sec. 3)\n"
          "FAIL lemma-a.1          d=256 theta=10000   max |difference|: 0.000476 <= 0.0005  "
          "(Figure 2a, Sec. 3)\n"
          "rope-verify: 1 of 2 checks hold\n");
    const std::string verbose = format_check_report({held}, true);
    CHECK(verbose.find("\n     all-ones q = k, d=256; max |difference| (printed to 3 decimals)\n"
                       "     values 1.000, 0.972\n") != std::string::npos);
}

TEST_CASE("an unknown --check lists the valid names") {
    try {
        run_checks({{64, 100.0}}, {"prop-3.3"});
        FAIL("no error");
    } catch (const Error& e) {
        const std::string message = e.what();
        CHECK(message.find("unknown check 'prop-3.3'") != std::string::npos);
        CHECK(message.find("rope-relative, layout-equivalence, prope-endpoints, prop-3.1") !=
              std::string::npos);
    }
}

TEST_CASE("every check the issue names is registered") {
    const char* names[] = {
        "rope-relative", "layout-equivalence", "prope-endpoints",  "prop-3.1", "prop-3.2", "fig-2a",
        "prop-5.2",      "thm-5.3-diagonal",   "thm-5.3-previous", "thm-6.1",  "lemma-a.1"};
    const auto& all = all_checks();
    REQUIRE(all.size() == std::size(names));
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].name == names[i]);
}
