#include "ropekit/dump/demo_dump_run.hpp"

namespace ropekit {

void run_make_demo_dump(const DemoDumpCommand& command, const RunContext& context) {
    DemoDumpSpec spec = command.spec;
    spec.stored = parse_dtype(command.dtype, "--dtype");
    H5Output out = H5Output::create(context.output, context.write_options({}));
    write_demo_dump(out, spec, [&](std::size_t done, std::size_t total) {
        context.progress(done, total, "layers");
    });
    out.commit(context.tool, context.command_line);
}

}  // namespace ropekit
