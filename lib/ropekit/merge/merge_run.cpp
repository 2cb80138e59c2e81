#include "ropekit/merge/merge_run.hpp"

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/merge/tool_mergers_internal.hpp"

namespace ropekit {
namespace {

std::vector<ToolMerger> tool_mergers() {
    return {freq_norms_merger(), positional_heads_merger(), decay_merger()};
}

ToolMerger merger_for(const H5Input& first) {
    const std::string tool = output_tool(first);
    std::string known;
    for (const ToolMerger& merger : tool_mergers()) {
        if (merger.schema.tool == tool) return merger;
        known += (known.empty() ? "" : ", ") + merger.schema.tool;
    }
    throw data_error(first.name(), "/@tool",
                     fmt::format("made by {}; rope-merge merges outputs of {}", tool, known));
}

}  // namespace

void run_merge(const MergeCommand& command, const RunContext& context) {
    if (command.inputs.empty()) throw usage_error("expected at least one output to merge");
    check_output_path(context.output, context.force, command.inputs);
    std::vector<H5Input> files;
    for (const std::string& path : command.inputs) files.push_back(H5Input::open(path));
    const ToolMerger merger = merger_for(files.front());
    if (merger.check_part) {
        for (const H5Input& file : files) merger.check_part(file);
    }
    check_outputs_agree(files, merger.schema);
    merger.merge(files, context, command.inputs);
    context.note(fmt::format("merged {} {} outputs", files.size(), merger.schema.tool));
}

}  // namespace ropekit
