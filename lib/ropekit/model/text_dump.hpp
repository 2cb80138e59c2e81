#pragma once
// rope-dump --text: a text file through the model directory's own tokenizer (tokenize/), joined
// into one stream with the model's separator and cut into windows, then perplexity per token and
// per byte over the tokens each window scores (Hugging Face's sliding-window protocol with
// --stride), recorded in the dump with the tokenizer and the text's path and sha256.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ropekit/core/tensor.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/model/model_dump.hpp"
#include "ropekit/tokenize/token_stream.hpp"

namespace ropekit {

struct TextWindows {
    Tensor<std::int64_t> ids;     // [windows, length]
    Tensor<std::int64_t> scored;  // [windows, length]: 1 where the NLL counts
    Tensor<std::int64_t> bytes;   // [windows, length]: bytes of text each token stands for
    std::string tokenizer, tokenizer_path, text_source, text_sha256;
    std::size_t documents = 0, dropped = 0;
};

// Tokenizes `spec.path` with the tokenizer of `model_path` (a Hugging Face directory; data_error
// for a llama2.c file, which has none) into windows of `length` tokens checked against `vocab`.
TextWindows read_text_windows(const std::string& model_path, std::size_t vocab,
                              const TextSource& spec, std::size_t length);

// --sample: the text of each sampled sequence, decoded with the model's own tokenizer (a
// Hugging Face directory's tokenizer.json / tokenizer.model, or a GGUF file's vocabulary);
// empty when the model has none (a llama2.c file, a directory without tokenizer files).
std::vector<std::string> decoded_sequences(const std::string& model_path,
                                           const Tensor<std::int64_t>& ids);

// Writes the "scored" and "token_bytes" datasets and the text attributes, replaces mean_nll and
// perplexity by their values over the scored tokens, adds perplexity_per_byte and bits_per_byte;
// returns rope-dump's summary line.
std::string record_text_perplexity(H5Output& out, const TextWindows& windows,
                                   const DumpSummary& summary);

}  // namespace ropekit
