#pragma once
// One merger per mergeable tool: its schema (merge_check_internal.hpp) and how the union's
// output is made from the parts' sufficient statistics.
#include <string>
#include <vector>

#include "ropekit/core/run_context.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/merge/merge_check_internal.hpp"

namespace ropekit {

struct ToolMerger {
    MergeSchema schema;
    // Writes context.output (files agree already) and prints the tool's summary.
    void (*merge)(const std::vector<H5Input>& files, const RunContext& context,
                  const std::vector<std::string>& inputs);
    // Refuses (data_error) an output of the tool that cannot merge at all; none = every one can.
    void (*check_part)(const H5Input& file) = nullptr;
};

ToolMerger freq_norms_merger();
ToolMerger positional_heads_merger();
ToolMerger decay_merger();

}  // namespace ropekit
