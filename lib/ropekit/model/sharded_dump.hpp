#pragma once
// rope-dump --shard-size, and rope-dump under mpirun: a run written as the shards of one dump
// (dump_files.hpp reads them back as one), all committed together or none left behind; under
// mpirun each rank writes its own shards, and the ranks agree before and after renaming.
#include <cstddef>
#include <string>
#include <vector>

#include "ropekit/core/run_context.hpp"
#include "ropekit/core/work_share.hpp"
#include "ropekit/model/model_dump.hpp"

namespace ropekit {

// dump.h5 -> dump-00000-of-00003.h5, dump-00001-of-00003.h5, ... (the suffix before the
// extension; a path without one gets ".h5").
std::vector<std::string> shard_paths(const std::string& output, std::size_t count);

// Which sequences each shard holds and which shards this part writes. shard_size > 0: shards of
// that many sequences (the last shorter), dealt to the parts in contiguous runs; 0: one shard per
// part, split as WorkShare::sequences splits them (a part left without sequences, when there are
// fewer than parts, writes none, and the shards are numbered over the others).
struct ShardPlan {
    std::vector<std::string> paths;    // every shard of the run (shard_paths)
    std::vector<std::size_t> starts;   // shard s holds sequences [starts[s], starts[s + 1])
    std::size_t first = 0, count = 0;  // this part's shards
    std::size_t begin() const { return starts[first]; }  // this part's sequences
    std::size_t end() const { return starts[first + count]; }
};
ShardPlan plan_shards(const std::string& output, std::size_t sequences, std::size_t shard_size,
                      const WorkShare& share = {});

// Runs this part's shards, one file each beside context.output, with the attribute token_source;
// `ids` are rows ids_first, ids_first + 1, ... of the run and hold at least this part's. Every
// shard is written before any is committed (under mpirun: on every rank, WorkShare::gather), and
// a failure anywhere removes those already committed (WorkShare::agree). Returns the summary over
// all sequences on part 0 (over this part's elsewhere).
DumpSummary write_sharded_dump(const LlamaModel& model, const Tensor<std::int64_t>& ids,
                               std::size_t ids_first, const DumpRequest& request,
                               const ShardPlan& plan, const RunContext& context,
                               const std::vector<std::string>& inputs,
                               const std::string& token_source, const WorkShare& share = {});

}  // namespace ropekit
