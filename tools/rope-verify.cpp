// rope-verify: checks the paper's results numerically and exits 1 if any check fails.
#include <algorithm>
#include <iostream>

#include "ropekit/cli/cli.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/verify/verify.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-verify",
              "Check the RoPE paper's propositions and theorems numerically over a grid of head "
              "dimensions and bases: rope-relative, layout-equivalence, prope-endpoints, "
              "prop-3.1, prop-3.2, fig-2a, prop-5.2, thm-5.3-diagonal, thm-5.3-previous, "
              "thm-6.1, lemma-a.1 (docs/tools/rope-verify.md says what each measures). Prints one "
              "row per check and grid point (name, d, theta, PASS/FAIL, measured, tolerance, what "
              "was checked [detail]) and exits 1 if any check fails.");
    std::vector<std::size_t> dims{256, 128};
    std::vector<double> thetas{1e4, 5e5};
    std::vector<std::string> only;
    bool json = false;
    tool.app()
        .add_option("--head-dim", dims, "Head dimensions to check (even), one per grid point")
        ->capture_default_str();
    tool.app()
        .add_option("--theta", thetas, "RoPE bases, paired with --head-dim by position")
        ->capture_default_str();
    tool.app().add_option("--check", only, "Run only these checks (by name; repeatable)");
    tool.app().add_flag("--json", json, "Print the results as a JSON array instead of a table");
    tool.examples(
        "  rope-verify                                 # default grid: (256, 1e4) and (128, 5e5)\n"
        "  rope-verify --head-dim 64 --theta 10000 --check rope-relative --check lemma-a.1\n"
        "  rope-verify --json | python3 -m json.tool   # machine-readable results\n"
        "  rope-verify | grep FAIL                     # only what failed\n");
    return tool.run(argc, argv, [&] {
        if (dims.size() != thetas.size()) {
            throw usage_error("--head-dim and --theta need the same number of values");
        }
        std::vector<CheckGrid> grid;
        for (std::size_t g = 0; g < dims.size(); ++g) grid.push_back({dims[g], thetas[g]});
        const auto results = run_checks(grid, only, [&](const CheckResult& r) {
            tool.note("{} (d={}, theta={:g}): {}", r.name, r.head_dim, r.theta,
                      r.passed ? "PASS" : "FAIL");
        });
        std::cout << (json ? format_check_json(results) : format_check_table(results));
        const auto failed = std::count_if(results.begin(), results.end(),
                                          [](const CheckResult& r) { return !r.passed; });
        if (failed) throw Error(ExitCode::data, fmt::format("{} checks failed", failed));
    });
}
