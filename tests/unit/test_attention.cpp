#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ropekit/core/normal_samples.hpp"
#include "ropekit/rope/attention.hpp"

using namespace ropekit;

TEST_CASE("causal scores: the lower triangle is scale * q.k in double, the rest is masked") {
    // Several row panels, strided rows, and a key cache longer than the queries.
    const std::size_t dim = 24, stride = 40;
    for (const auto& [queries, keys] :
         {std::pair<std::size_t, std::size_t>{150, 150}, {70, 200}, {1, 9}, {64, 64}}) {
        CAPTURE(queries);
        CAPTURE(keys);
        std::vector<float> q(queries * stride), k(keys * stride);
        fill_standard_normal(1, 0, q.data(), q.size());
        fill_standard_normal(1, 1, k.data(), k.size());
        std::vector<float> scores(queries * keys, 7.0f);
        causal_scores(q.data(), stride, k.data(), stride, queries, keys, dim, 0.5f, scores.data());
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < queries; ++i) {
            for (std::size_t j = 0; j < keys; ++j) {
                const float got = scores[i * keys + j];
                if (j > keys - queries + i) {
                    wrong += got != -std::numeric_limits<float>::infinity();
                    continue;
                }
                double dot = 0;
                for (std::size_t d = 0; d < dim; ++d)
                    dot += double(q[i * stride + d]) * k[j * stride + d];
                wrong += std::abs(got - 0.5 * dot) > 1e-5 * (1 + std::abs(dot));
            }
        }
        CHECK(wrong == 0);
    }
}
