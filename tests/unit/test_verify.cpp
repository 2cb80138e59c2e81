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
    CHECK(format_check_table(results).find("fig-2a") != std::string::npos);
    CHECK(format_check_json(results).find("\"head_dim\": 32") != std::string::npos);
}

TEST_CASE("every check the issue names is registered") {
    const char* names[] = {
        "rope-relative", "layout-equivalence", "prope-endpoints",  "prop-3.1", "prop-3.2", "fig-2a",
        "prop-5.2",      "thm-5.3-diagonal",   "thm-5.3-previous", "thm-6.1",  "lemma-a.1"};
    const auto& all = all_checks();
    REQUIRE(all.size() == std::size(names));
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].name == names[i]);
}
