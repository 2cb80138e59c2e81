#pragma once
// Numerical checks of the paper's results (rope-verify). Each check measures one number and
// compares it with a tolerance; a failed check is reported, never thrown.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace ropekit {

struct CheckResult {
    std::string name;      // e.g. "rope-relative"
    std::string what;      // what was checked, in words, with its parameters
    double measured = 0;   // the number that decides
    double tolerance = 0;  // pass when the check's own comparison holds
    bool passed = false;
    std::string detail;        // extra context (e.g. where the worst case was)
    std::size_t head_dim = 0;  // the grid point, filled in by run_checks
    double theta = 0;
};

struct CheckGrid {
    std::size_t head_dim;
    double theta;
};

using Check = std::function<CheckResult(const CheckGrid&)>;

struct NamedCheck {
    std::string name;
    Check run;
};

// Every check rope-verify knows, in the order it prints them.
const std::vector<NamedCheck>& all_checks();

// Runs the named checks (every check if `names` is empty) at each grid point, in order, calling
// `done` after each. usage_error for an unknown name.
std::vector<CheckResult> run_checks(const std::vector<CheckGrid>& grid,
                                    const std::vector<std::string>& names,
                                    const std::function<void(const CheckResult&)>& done = {});
// One line per check: name, d, theta, PASS/FAIL, measured, tolerance, what [detail].
std::string format_check_table(const std::vector<CheckResult>& results);
// A JSON array of objects with the same fields (name, head_dim, theta, passed, measured,
// tolerance, what, detail).
std::string format_check_json(const std::vector<CheckResult>& results);

}  // namespace ropekit
