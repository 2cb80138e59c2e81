#pragma once
// Token sequences sampled from a model itself: real in-distribution ids without a tokenizer.
#include <cstddef>
#include <cstdint>
#include <functional>

#include "ropekit/core/tensor.hpp"
#include "ropekit/model/llama_model.hpp"

namespace ropekit {

struct SampleSpec {
    std::size_t count = 1;     // sequences
    std::size_t first = 0;     // index of the first: a part of a run split over processes
    std::size_t length = 256;  // tokens per sequence, the BOS at position 0 included
    std::uint64_t seed = 0;
    double temperature = 0.0;  // 0 = greedy (argmax, first index on ties)
    std::size_t batch = 16;    // sequences decoded together (does not change the result)
    std::int64_t bos = 1;
};

// The next token from one row of logits: the argmax at temperature 0, otherwise the inverse CDF
// of softmax(logits / temperature) (in double) at u in [0, 1).
std::int64_t pick_token(const float* logits, std::size_t vocab, double temperature, double u);

// [count, length] ids, decoded token by token with a KV cache under the model's own RoPE.
// Sequence i (counted from 0 for the whole run: first + row) draws from its own generator seeded
// by (seed, i), so the result does not depend on `batch` or on how a run is split. A generated BOS
// is kept (llama2.c's stories use it to separate stories). `progress(done)` is called after each
// batch.
Tensor<std::int64_t> sample_sequences(const LlamaModel& model, const SampleSpec& spec,
                                      const std::function<void(std::size_t)>& progress = {});

}  // namespace ropekit
