#pragma once
// make-demo-dump as one call: the demo dump its command line describes, written to
// context.output.
#include <string>

#include "ropekit/core/run_context.hpp"
#include "ropekit/dump/demo_dump.hpp"

namespace ropekit {

struct DemoDumpCommand {
    DemoDumpSpec spec;          // stored comes from dtype
    std::string dtype = "f32";  // f16 | bf16 | f32 | f64
};

void run_make_demo_dump(const DemoDumpCommand& command, const RunContext& context);

}  // namespace ropekit
