#pragma once
// rope-verify as one call: the checks its command line names (VerifyCommand) run over the grid,
// the table (or JSON) is printed, and any failure is a failed check (exit 3).
#include <cstddef>
#include <string>
#include <vector>

#include "ropekit/core/run_context.hpp"

namespace ropekit {

struct VerifyCommand {
    std::vector<std::size_t> head_dims{256, 128};
    std::vector<double> thetas{1e4, 5e5};  // paired with head_dims by position
    std::vector<std::string> only;         // check names; empty = every check
    bool json = false;
    bool verbose = false;  // what each check did and its details, below its line
};

// Prints every result once (stdout), then throws check_failed_error "N checks failed" if any
// failed.
void run_verify(const VerifyCommand& command, const RunContext& context);

}  // namespace ropekit
