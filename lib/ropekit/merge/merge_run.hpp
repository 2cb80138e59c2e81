#pragma once
// rope-merge: the outputs of one tool with the same options, computed over parts of a dump (shards,
// sequence ranges, sample ranges), combined into the output of the union from the sufficient
// statistics every mergeable output stores (docs/tools/rope-merge.md).
#include <string>
#include <vector>

#include "ropekit/core/run_context.hpp"

namespace ropekit {

struct MergeCommand {
    std::vector<std::string> inputs;  // outputs of freq-norms, find-positional-heads, rope-decay
};

// Refuses (data_error naming both files and the attribute or dataset) outputs of different tools
// or options; writes context.output as the tool would have over the union (its `tool` attribute
// stays the tool's, so merged outputs merge again) and prints the tool's summary.
void run_merge(const MergeCommand& command, const RunContext& context);

}  // namespace ropekit
