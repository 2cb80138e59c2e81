#pragma once
// construct-key as one call: the key (Proposition 3.1) or the whole head (Theorem 5.3) its
// command line asks for (KeyConstructionCommand) is built (key_construction.hpp) and written.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "ropekit/core/run_context.hpp"

namespace ropekit {

struct KeyConstructionCommand {
    // The query: exactly one of FILE:DATASET (with `row`), a Gaussian seed, or all ones.
    std::string query_file;
    std::optional<std::uint64_t> query_seed;
    bool query_ones = false;
    std::size_t row = 0;
    std::size_t head_dim = 256;
    double theta = 1e4;
    std::string layout = "half";
    std::string chunks = "all";  // parse_chunk_spec
    std::size_t tokens = 0;      // 0 = 8192 for a key, 1024 for a head
    // A key peaking `offset` tokens back, or with `head` non-empty a head (parse_head_spec).
    std::int64_t offset = 1;
    std::string head;
    double epsilon = 0.01;
    std::string scale = "sqrt";  // sqrt (models' 1/sqrt(d)) | none (the paper's)
    bool no_pattern = false;     // skip hook_pattern / hook_attn_scores
};

void run_construct_key(const KeyConstructionCommand& command, const RunContext& context);

}  // namespace ropekit
