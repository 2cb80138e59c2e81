#pragma once
// Per-token negative log-likelihood and perplexity of sequences under a model.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "ropekit/model/llama_model.hpp"

namespace ropekit {

// ln Σ exp(x) over values given a block at a time: float exponentials of x − max (2 ulp),
// summed in double; the running sum is rescaled whenever a block raises the maximum.
class LogSumExp {
  public:
    void add(const float* x, std::size_t n);
    double value() const;

  private:
    double peak_ = -std::numeric_limits<double>::infinity();
    double total_ = 0.0;  // Σ exp(x - peak_)
};

// -log softmax(logits)[index], natural log, computed in double.
double negative_log_softmax(const float* logits, std::size_t vocab, std::size_t index);

// nll[b * tokens + t] = -log p(ids[b, t] | ids[b, < t]) from the final hidden states of a
// forward pass; position 0 has no prediction and stores 0. The logits of every row are made a
// block of the vocabulary at a time: memory stays small even for a 128k vocabulary, and the
// classifier is read (converted, if stored) once per call.
std::vector<double> token_nll(const LlamaModel& model, const float* hidden, const std::int64_t* ids,
                              std::size_t batch, std::size_t tokens);

// exp(mean nll over positions 1 .. tokens-1 of every sequence); NaN when there are none.
double perplexity(const std::vector<double>& nll, std::size_t batch, std::size_t tokens);
double mean_nll(const std::vector<double>& nll, std::size_t batch, std::size_t tokens);

}  // namespace ropekit
