#include "ropekit/rope/rope.hpp"

#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

std::string layout_name(Layout layout) {
    return enum_name(kLayoutNames, layout);
}

Layout parse_layout(const std::string& name) {
    return parse_enum(kLayoutNames, name, "--layout");
}

std::pair<std::size_t, std::size_t> Schedule::chunk_dims(std::size_t k) const {
    if (layout == Layout::half) return {k, k + rotary_dim / 2};
    return {2 * k, 2 * k + 1};
}

std::vector<double> default_inv_freq(std::size_t rotary_dim, double theta) {
    std::vector<double> inv_freq(rotary_dim / 2);
    for (std::size_t k = 0; k < inv_freq.size(); ++k) {
        inv_freq[k] =
            std::pow(theta, -2.0 * static_cast<double>(k) / static_cast<double>(rotary_dim));
    }
    return inv_freq;
}

Schedule make_schedule(std::size_t head_dim, double theta, Layout layout, std::size_t rotary_dim) {
    if (rotary_dim == 0) rotary_dim = head_dim;
    if (head_dim == 0 || head_dim % 2 != 0) {
        throw usage_error(fmt::format("head_dim must be even and positive, got {}", head_dim));
    }
    if (rotary_dim % 2 != 0 || rotary_dim > head_dim) {
        throw usage_error(fmt::format("rotary_dim must be even and at most head_dim {}, got {}",
                                      head_dim, rotary_dim));
    }
    if (!(theta > 1.0) || !std::isfinite(theta)) {
        throw usage_error(fmt::format("theta must be a finite number above 1, got {}", theta));
    }
    Schedule s;
    s.head_dim = head_dim;
    s.rotary_dim = rotary_dim;
    s.layout = layout;
    s.inv_freq = default_inv_freq(rotary_dim, theta);
    return s;
}

std::size_t prope_kept_count(double p, std::size_t n) {
    if (!(p >= 0.0 && p <= 1.0)) {
        throw usage_error(fmt::format("p must be in [0, 1], got {}", p));
    }
    return static_cast<std::size_t>(std::floor(p * static_cast<double>(n) + 1e-9));
}

std::vector<double> snap_dropped(std::vector<double> inv_freq) {
    for (double& g : inv_freq) {
        if (std::abs(g) <= kDroppedTolerance) g = 0.0;
    }
    return inv_freq;
}

std::vector<double> apply_prope(std::vector<double> inv_freq, double p, bool reverse) {
    const std::size_t n = inv_freq.size();
    const std::size_t m = prope_kept_count(p, n);
    for (std::size_t k = 0; k < n; ++k) {
        const bool kept = reverse ? k >= n - m : k < m;
        if (!kept) inv_freq[k] = 0.0;
    }
    return inv_freq;
}

Schedule apply_prope(Schedule schedule, double p, bool reverse) {
    schedule.inv_freq = apply_prope(std::move(schedule.inv_freq), p, reverse);
    return schedule;
}

namespace {

// `count` vectors spaced `stride` apart, all at `position`: cos/sin once per chunk, then the
// same double arithmetic on every vector (so one vector or many give the same bits).
template <class T>
void rotate_by(T* v, std::size_t count, std::size_t stride, const Schedule& s, double position,
               double scale) {
    for (std::size_t k = 0; k < s.inv_freq.size(); ++k) {
        const double angle = position * s.inv_freq[k];
        const double c = std::cos(angle) * scale, sn = std::sin(angle) * scale;
        const auto [a, b] = s.chunk_dims(k);
        for (std::size_t r = 0; r < count; ++r) {
            T* w = v + r * stride;
            const double x = w[a], y = w[b];
            w[a] = static_cast<T>(x * c - y * sn);
            w[b] = static_cast<T>(x * sn + y * c);
        }
    }
}

template <class T>
double logit_of(const T* q, const T* k, const Schedule& s, double n) {
    double total = 0.0;
    for (std::size_t c = 0; c < s.inv_freq.size(); ++c) {
        const double angle = n * s.inv_freq[c];
        const auto [a, b] = s.chunk_dims(c);
        const double qa = q[a], qb = q[b], ka = k[a], kb = k[b];
        total += std::cos(angle) * (qa * ka + qb * kb) + std::sin(angle) * (qb * ka - qa * kb);
    }
    for (std::size_t d = s.rotary_dim; d < s.head_dim; ++d) {
        total += static_cast<double>(q[d]) * static_cast<double>(k[d]);
    }
    return total;
}

}  // namespace

void rotate(float* v, const Schedule& s, double position) {
    rotate_by(v, 1, 0, s, position, s.attention_factor);
}
void rotate(double* v, const Schedule& s, double position) {
    rotate_by(v, 1, 0, s, position, s.attention_factor);
}
void rotate(float* v, std::size_t count, std::size_t stride, const Schedule& s, double position) {
    rotate_by(v, count, stride, s, position, s.attention_factor);
}
void unrotate(float* v, const Schedule& s, double position) {
    rotate_by(v, 1, 0, s, -position, 1.0 / s.attention_factor);
}

double relative_logit(const float* q, const float* k, const Schedule& s, double n) {
    return logit_of(q, k, s, n);
}
double relative_logit(const double* q, const double* k, const Schedule& s, double n) {
    return logit_of(q, k, s, n);
}

}  // namespace ropekit
