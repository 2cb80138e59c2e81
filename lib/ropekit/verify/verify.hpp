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
    std::string holds_when{};  // how measured compares with tolerance when it holds: "<=", ">"...
    std::string cites{};       // the paper's result and section, e.g. "Prop 3.1, Sec. 3"
};

struct CheckGrid {
    std::size_t head_dim;
    double theta;
};

using Check = std::function<CheckResult(const CheckGrid&)>;

struct NamedCheck {
    std::string name;
    Check run;
    std::string holds_when;  // copied into each CheckResult
    std::string cites;
};

// Every check rope-verify knows, in the order it prints them.
const std::vector<NamedCheck>& all_checks();

// Runs the named checks (every check if `names` is empty) at each grid point, in order, calling
// `done` after each. usage_error for an unknown name, listing the valid ones.
std::vector<CheckResult> run_checks(const std::vector<CheckGrid>& grid,
                                    const std::vector<std::string>& names,
                                    const std::function<void(const CheckResult&)>& done = {});
// One short line per check and grid point: verdict, name, grid point, the quantity measured,
// its value, the comparison and tolerance, and the paper's result; `verbose` adds what was done
// and the details below each line. Ends with "N of M checks hold".
std::string format_check_report(const std::vector<CheckResult>& results, bool verbose);
// A JSON array of objects: name, head_dim, theta, passed, measured, holds_when, tolerance, what,
// detail, cites.
std::string format_check_json(const std::vector<CheckResult>& results);

}  // namespace ropekit
