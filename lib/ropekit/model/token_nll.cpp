#include "ropekit/model/token_nll.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ropekit/core/threads.hpp"
#include "ropekit/rope/exp_nonpositive.hpp"

namespace ropekit {

namespace {

// Logits per block of the vocabulary, over all rows: about this many floats.
constexpr std::size_t kLogitFloats = std::size_t{1} << 22;

std::size_t vocab_block(std::size_t rows, std::size_t vocab) {
    return std::min(vocab,
                    std::max<std::size_t>(256, kLogitFloats / std::max<std::size_t>(1, rows)));
}

// Compiled for the x86-64 baseline and for AVX2, picked at load time; no FMA in either, so
// both round identically (as causal_softmax).
__attribute__((target_clones("avx2", "default"))) float largest(const float* x, std::size_t n) {
    float peaks[8];
    std::fill(peaks, peaks + 8, x[0]);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (std::size_t lane = 0; lane < 8; ++lane) {
            peaks[lane] = x[i + lane] > peaks[lane] ? x[i + lane] : peaks[lane];
        }
    }
    for (; i < n; ++i) peaks[0] = x[i] > peaks[0] ? x[i] : peaks[0];
    return *std::max_element(peaks, peaks + 8);
}

// Σ exp(x - peak) for x <= peak: float exponentials, a double sum in four partial sums.
__attribute__((target_clones("avx2", "default"))) double sum_of_exponentials(const float* x,
                                                                             std::size_t n,
                                                                             float peak) {
    constexpr std::size_t kChunk = 256;
    float e[kChunk];
    double partial[4] = {0.0, 0.0, 0.0, 0.0};
    for (std::size_t first = 0; first < n; first += kChunk) {
        const std::size_t count = std::min(kChunk, n - first);
        for (std::size_t i = 0; i < count; ++i) e[i] = exp_nonpositive(x[first + i] - peak);
        std::size_t i = 0;
        for (; i + 4 <= count; i += 4) {
            for (std::size_t lane = 0; lane < 4; ++lane) partial[lane] += e[i + lane];
        }
        for (; i < count; ++i) partial[0] += e[i];
    }
    return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

}  // namespace

void LogSumExp::add(const float* x, std::size_t n) {
    if (n == 0) return;
    const double block_peak = largest(x, n);
    if (block_peak > peak_) {
        total_ *= std::exp(peak_ - block_peak);
        peak_ = block_peak;
    }
    if (peak_ == -std::numeric_limits<double>::infinity()) return;  // every value so far -inf
    total_ += sum_of_exponentials(x, n, static_cast<float>(peak_));
}

double LogSumExp::value() const {
    return peak_ + std::log(total_);
}

double negative_log_softmax(const float* logits, std::size_t vocab, std::size_t index) {
    LogSumExp sum;
    sum.add(logits, vocab);
    return sum.value() - logits[index];
}

std::vector<double> token_nll(const LlamaModel& model, const float* hidden, const std::int64_t* ids,
                              std::size_t batch, std::size_t tokens) {
    const std::size_t vocab = model.config().vocab_size, rows = batch * tokens;
    const Projection& head = model.weights().classifier;
    const std::size_t block = vocab_block(rows, vocab);
    std::vector<float> logits(rows * block);
    std::vector<LogSumExp> sums(rows);
    std::vector<double> target(rows, 0.0);  // the logit of the next token, row r predicts r + 1
    for (std::size_t first = 0; first < vocab; first += block) {
        const std::size_t count = std::min(block, vocab - first);
        const Projection part{head.weight.row_range(first, count),
                              head.bias ? head.bias + first : nullptr};
        project(hidden, rows, part, logits.data());
        const float cap = model.config().final_softcap;
        if (cap > 0) soft_cap(logits.data(), rows * count, cap);
        parallel_for(rows, [&](std::size_t begin, std::size_t end) {
            for (std::size_t r = begin; r < end; ++r) {
                if ((r + 1) % tokens == 0) continue;  // the last position predicts nothing we have
                const float* row = &logits[r * count];
                sums[r].add(row, count);
                const auto next = static_cast<std::size_t>(ids[r + 1]);
                if (next >= first && next < first + count) target[r] = row[next - first];
            }
        });
    }
    std::vector<double> nll(rows, 0.0);
    for (std::size_t r = 0; r + 1 < rows; ++r) {
        if ((r + 1) % tokens != 0) nll[r + 1] = sums[r].value() - target[r];
    }
    return nll;
}

double mean_nll(const std::vector<double>& nll, std::size_t batch, std::size_t tokens) {
    if (tokens < 2) return std::numeric_limits<double>::quiet_NaN();
    double total = 0.0;
    for (std::size_t b = 0; b < batch; ++b) {
        for (std::size_t t = 1; t < tokens; ++t) total += nll[b * tokens + t];
    }
    return total / static_cast<double>(batch * (tokens - 1));
}

double perplexity(const std::vector<double>& nll, std::size_t batch, std::size_t tokens) {
    return std::exp(mean_nll(nll, batch, tokens));
}

}  // namespace ropekit
