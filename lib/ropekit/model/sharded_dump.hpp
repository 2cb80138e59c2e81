#pragma once
// rope-dump --shard-size: a run written as the shards of one dump (dump_files.hpp reads them
// back as one), all committed together or none left behind.
#include <cstddef>
#include <string>
#include <vector>

#include "ropekit/core/run_context.hpp"
#include "ropekit/model/model_dump.hpp"

namespace ropekit {

// dump.h5 -> dump-00000-of-00003.h5, dump-00001-of-00003.h5, ... (the suffix before the
// extension; a path without one gets ".h5").
std::vector<std::string> shard_paths(const std::string& output, std::size_t count);

// Runs `ids` in shards of `shard_size` sequences, one file each beside context.output, with the
// attribute token_source. Every shard is written before any is committed, and a failure removes
// those already committed. Returns the summary over all sequences.
DumpSummary write_sharded_dump(const LlamaModel& model, const Tensor<std::int64_t>& ids,
                               const DumpRequest& request, std::size_t shard_size,
                               const RunContext& context, const std::vector<std::string>& inputs,
                               const std::string& token_source);

}  // namespace ropekit
