#include "ropekit/rope/logit_curve.hpp"

#include <cmath>
#include <limits>

namespace ropekit {

namespace {

template <class T>
double coefficients_of(const T* q, const T* k, const Schedule& s, double* coeffs) {
    const std::size_t chunks = s.frequency_count();
    for (std::size_t c = 0; c < chunks; ++c) {
        const auto [a, b] = s.chunk_dims(c);
        const double qa = q[a], qb = q[b], ka = k[a], kb = k[b];
        coeffs[c] = qa * ka + qb * kb;
        coeffs[chunks + c] = qb * ka - qa * kb;
    }
    double constant = 0.0;
    for (std::size_t d = s.rotary_dim; d < s.head_dim; ++d) {
        constant += static_cast<double>(q[d]) * static_cast<double>(k[d]);
    }
    return constant;
}

}  // namespace

double pair_coefficients(const double* q, const double* k, const Schedule& s, double* coeffs) {
    return coefficients_of(q, k, s, coeffs);
}
double pair_coefficients(const float* q, const float* k, const Schedule& s, double* coeffs) {
    return coefficients_of(q, k, s, coeffs);
}

OffsetTrig::OffsetTrig(const Schedule& s, std::vector<std::int64_t> offsets)
    : offsets_(std::move(offsets)), chunks_(s.frequency_count()) {
    const std::size_t n = offsets_.size();
    table_.resize(2 * chunks_ * n);
    for (std::size_t c = 0; c < chunks_; ++c) {
        for (std::size_t o = 0; o < n; ++o) {
            const double angle = -static_cast<double>(offsets_[o]) * s.inv_freq[c];
            table_[c * n + o] = std::cos(angle);
            table_[(chunks_ + c) * n + o] = std::sin(angle);
        }
    }
}

std::vector<double> OffsetTrig::curve(const double* coeffs, double constant) const {
    const std::size_t n = offsets_.size();
    std::vector<double> out(n, constant);
    for (std::size_t r = 0; r < 2 * chunks_; ++r) {
        const double w = coeffs[r];
        if (w == 0.0) continue;
        const double* row = table_.data() + r * n;
        for (std::size_t o = 0; o < n; ++o) out[o] += w * row[o];
    }
    return out;
}

std::vector<double> offset_curve(const double* q, const double* k, const Schedule& s,
                                 const std::vector<std::int64_t>& offsets) {
    std::vector<double> coeffs(2 * s.frequency_count());
    const double constant = pair_coefficients(q, k, s, coeffs.data());
    return OffsetTrig(s, offsets).curve(coeffs.data(), constant);
}

std::vector<std::int64_t> offset_range(std::int64_t n) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>(i);
    return v;
}

CurvePeak find_peak(const std::vector<double>& curve) {
    CurvePeak p;
    p.peak = -std::numeric_limits<double>::infinity();
    p.runner_up = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < curve.size(); ++i) {
        if (curve[i] > p.peak) {
            p.runner_up = p.peak;
            p.peak = curve[i];
            p.argmax = i;
        } else if (curve[i] > p.runner_up) {
            p.runner_up = curve[i];
        }
    }
    p.margin = curve.size() > 1 ? 1.0 - p.runner_up / p.peak : 0.0;
    return p;
}

}  // namespace ropekit
