#include "ropekit/model/token_nll.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ropekit {

double negative_log_softmax(const float* logits, std::size_t vocab, std::size_t index) {
    const double peak = *std::max_element(logits, logits + vocab);
    double total = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) total += std::exp(logits[v] - peak);
    return std::log(total) - (logits[index] - peak);
}

std::vector<double> token_nll(const LlamaModel& model, const float* hidden, const std::int64_t* ids,
                              std::size_t batch, std::size_t tokens) {
    const std::size_t vocab = model.config().vocab_size, dim = model.config().dim;
    constexpr std::size_t kRowsPerBlock = 64;
    std::vector<double> nll(batch * tokens, 0.0);
    std::vector<float> logits(kRowsPerBlock * vocab);
    const std::size_t rows = batch * tokens;
    for (std::size_t first = 0; first < rows; first += kRowsPerBlock) {
        const std::size_t count = std::min(kRowsPerBlock, rows - first);
        model.logits(hidden + first * dim, count, logits.data());
        for (std::size_t r = first; r < first + count; ++r) {
            if ((r + 1) % tokens == 0) continue;  // the last position predicts nothing we have
            nll[r + 1] = negative_log_softmax(&logits[(r - first) * vocab], vocab,
                                              static_cast<std::size_t>(ids[r + 1]));
        }
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
