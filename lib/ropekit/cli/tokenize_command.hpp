#pragma once
// rope-tokenize's work, so that tools/rope-tokenize.cpp only parses its options.
#include <cstddef>
#include <string>

#include "ropekit/core/run_context.hpp"

namespace ropekit {

struct TokenizeRequest {
    std::string tokenizer;      // directory, tokenizer.json, tokenizer.model or GGUF file
    std::string text = "-";     // input text ('-' = stdin); with decode, lines of ids
    bool decode = false;        // ids back to text
    bool skip_special = false;  // decode: leave special tokens out
    bool plain = false;         // encode: no BOS/EOS from the post-processor
    std::size_t length = 0;     // join documents and cut windows of this many tokens (0 = per line)
    bool whole = false;         // with length: the whole text is one document
    std::string format;         // "txt", "h5", or "" to follow the output name (.h5/.hdf5 = h5)
};

// Reads the text, encodes (or decodes) it and writes context.output atomically: text with one line
// of ids per input line (or per window), or an HDF5 file whose int64 "tokens" dataset
// [sequences, length] rope-dump --tokens reads, with the tokenizer and text recorded.
void run_tokenize(const RunContext& context, const TokenizeRequest& request);

}  // namespace ropekit
