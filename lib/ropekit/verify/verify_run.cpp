#include "ropekit/verify/verify_run.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/verify/verify.hpp"

namespace ropekit {

void run_verify(const VerifyCommand& command, const RunContext& context) {
    if (command.head_dims.size() != command.thetas.size()) {
        throw usage_error("--head-dim and --theta need the same number of values");
    }
    std::vector<CheckGrid> grid;
    for (std::size_t g = 0; g < command.head_dims.size(); ++g) {
        grid.push_back({command.head_dims[g], command.thetas[g]});
    }
    const auto results = run_checks(grid, command.only);
    context.print(command.json ? format_check_json(results)
                               : format_check_report(results, command.verbose));
    const auto failed = std::count_if(results.begin(), results.end(),
                                      [](const CheckResult& r) { return !r.passed; });
    if (failed) throw check_failed_error(fmt::format("{} checks failed", failed));
}

}  // namespace ropekit
