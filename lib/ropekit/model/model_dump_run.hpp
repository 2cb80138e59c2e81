#pragma once
// rope-dump as one call: the checkpoint its command line names (RopeDumpCommand) is loaded, run
// over the chosen token sequences with the chosen RoPE schedule, and dumped (model_dump.hpp).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "ropekit/core/run_context.hpp"
#include "ropekit/core/work_share.hpp"
#include "ropekit/tokenize/token_stream.hpp"

namespace ropekit {

struct RopeDumpCommand {
    std::string model;  // llama2.c checkpoint file or Hugging Face directory
    // The token ids: exactly one of a file ('-' = stdin, or an HDF5 file with 'tokens'), a
    // literal list "1 2 3", N sequences sampled from the model, or a text (text.path non-empty)
    // through the model directory's own tokenizer, cut into windows.
    std::optional<std::string> tokens, ids;
    std::optional<std::size_t> sample;
    TextSource text;
    std::optional<std::size_t> length;  // tokens per sampled sequence (BOS included) or window
    std::uint64_t seed = 0;
    double temperature = 1.0;  // N greedy sequences would all be the same
    // The schedule: the model's, --theta (plain RoPE at that base), then p-RoPE.
    std::optional<double> p, theta;
    bool reverse = false;
    std::size_t batch = 8;       // sequences per forward pass
    std::size_t shard_size = 0;  // sequences per file (sharded_dump.hpp); 0 = one file
    std::string layers = "all";
    std::string what = "q,k,rot_q,rot_k,pattern";  // parse_hooks; empty = tokens and nll only
    std::string dtype = "f32";                     // stored element type of the hooks
};

// Tokens per sampled sequence or text window when --length is not given.
inline constexpr std::size_t kDefaultDumpLength = 256;

// Prints the perplexity line (summary_line, or per token and per byte for a text). Under a
// WorkShare of several parts (mpirun), each part runs its sequences from the same model into its
// own shards (sharded_dump.hpp), and part 0 prints the line over all.
void run_rope_dump(const RopeDumpCommand& command, const RunContext& context,
                   const WorkShare& share = {});

}  // namespace ropekit
