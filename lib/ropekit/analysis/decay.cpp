#include "ropekit/analysis/decay.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/analysis/decay_moments.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/core/normal_samples.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/hdf5/row_blocks.hpp"
#include "ropekit/plot/svg_plot.hpp"
#include "ropekit/rope/logit_curve.hpp"

namespace ropekit {

namespace {
constexpr std::size_t kBlockPairs = 512;  // pairs per SGEMM: [512 x offsets] floats of scratch
}

std::string decay_mode_name(DecayMode mode) {
    return enum_name(kDecayModeNames, mode);
}

DecayMode parse_decay_mode(const std::string& name) {
    return parse_enum(kDecayModeNames, name, "--mode");
}

struct DecayAccumulator::Impl {
    std::size_t head_dim, chunks, width, offsets;
    Schedule schedule;
    std::vector<std::int64_t> offset_values;
    std::vector<float> trig;        // [width x offsets]: cos rows, sin rows, then a row of ones
    std::vector<float> coeffs;      // [block x width]
    std::vector<float> logits;      // [block x offsets]
    std::vector<double> row_scale;  // [block]: what each row's logits are multiplied back by
    // Power sums of the logits: rows of ordinary size in double (the fast path), rows whose
    // coefficients had to be rescaled in long double (x^4 of 1e77 or 1e-80 fits only there).
    std::vector<double> s1, s2, s3, s4;
    std::vector<long double> w1, w2, w3, w4;

    void scale_coefficients(std::size_t row, const std::vector<double>& c, double inv_d);
    void accumulate(std::size_t rows, std::size_t begin, std::size_t end);
};

// Stores row `row` of the SGEMM's left factor. Coefficients from 2^-60 to 2^60 are stored as
// they are; a row outside (|q|, |k| near the float maximum, or subnormal) is first scaled by a
// power of two so that float holds it without overflow or underflow, and its logits are scaled
// back in double (powers of two scale exactly).
void DecayAccumulator::Impl::scale_coefficients(std::size_t row, const std::vector<double>& c,
                                                double inv_d) {
    double peak = 0.0;
    for (double v : c) peak = std::max(peak, std::abs(v * inv_d));
    int exponent = 0;
    if (peak > 0x1p60 || (peak > 0.0 && peak < 0x1p-60)) std::frexp(peak, &exponent);
    row_scale[row] = std::ldexp(1.0, exponent);
    for (std::size_t w = 0; w < width; ++w) {
        coeffs[row * width + w] = static_cast<float>(std::ldexp(c[w] * inv_d, -exponent));
    }
}

void DecayAccumulator::Impl::accumulate(std::size_t rows, std::size_t begin, std::size_t end) {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = logits.data() + r * offsets;
        if (row_scale[r] == 1.0) {
            for (std::size_t o = begin; o < end; ++o) {
                const double x = row[o], x2 = x * x;
                s1[o] += x;
                s2[o] += x2;
                s3[o] += x2 * x;
                s4[o] += x2 * x2;
            }
            continue;
        }
        for (std::size_t o = begin; o < end; ++o) {
            const long double x = static_cast<long double>(row[o]) * row_scale[r], x2 = x * x;
            w1[o] += x;
            w2[o] += x2;
            w3[o] += x2 * x;
            w4[o] += x2 * x2;
        }
    }
}

DecayAccumulator::DecayAccumulator(const Schedule& s, std::vector<std::int64_t> offsets)
    : impl_(new Impl) {
    Impl& m = *impl_;
    m.schedule = s;
    m.head_dim = s.head_dim;
    m.chunks = s.frequency_count();
    m.width = 2 * m.chunks + 1;  // the last column carries the unrotated dims' dot product
    m.offsets = offsets.size();
    const OffsetTrig table(s, offsets);
    m.offset_values = std::move(offsets);
    m.trig.resize(m.width * m.offsets);
    for (std::size_t i = 0; i < 2 * m.chunks * m.offsets; ++i) {
        m.trig[i] = static_cast<float>(table.table()[i]);
    }
    std::fill(m.trig.begin() + static_cast<std::ptrdiff_t>(2 * m.chunks * m.offsets), m.trig.end(),
              1.0f);
    m.coeffs.resize(kBlockPairs * m.width);
    m.logits.resize(kBlockPairs * m.offsets);
    m.row_scale.resize(kBlockPairs);
    for (auto* v : {&m.s1, &m.s2, &m.s3, &m.s4}) v->assign(m.offsets, 0.0);
    for (auto* v : {&m.w1, &m.w2, &m.w3, &m.w4}) v->assign(m.offsets, 0.0L);
}

DecayAccumulator::~DecayAccumulator() {
    delete impl_;
}

void DecayAccumulator::add(const float* q, const float* k, std::size_t n) {
    Impl& m = *impl_;
    const double inv_d = 1.0 / static_cast<double>(m.head_dim);
    std::vector<double> c(m.width);
    for (std::size_t start = 0; start < n; start += kBlockPairs) {
        const std::size_t rows = std::min(kBlockPairs, n - start);
        for (std::size_t r = 0; r < rows; ++r) {
            const float* qr = q + (start + r) * m.head_dim;
            const float* kr = k + (start + r) * m.head_dim;
            c.back() = pair_coefficients(qr, kr, m.schedule, c.data());
            m.scale_coefficients(r, c, inv_d);
        }
        if (m.offsets == 0) continue;
        ensure_blas_address_space();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                    static_cast<blasint>(m.offsets), static_cast<blasint>(m.width), 1.0f,
                    m.coeffs.data(), static_cast<blasint>(m.width), m.trig.data(),
                    static_cast<blasint>(m.offsets), 0.0f, m.logits.data(),
                    static_cast<blasint>(m.offsets));
        parallel_for(m.offsets,
                     [&](std::size_t begin, std::size_t end) { m.accumulate(rows, begin, end); });
    }
    samples_ += n;
}

DecayCurve DecayAccumulator::result() const {
    const Impl& m = *impl_;
    DecayCurve out;
    out.offsets = m.offset_values;
    out.samples = samples_;
    // In long double: the moments of logits near 1e77 (or 1e-80) do not fit a double.
    using Wide = long double;
    const Wide n = static_cast<Wide>(samples_);
    out.activation.resize(m.offsets);
    for (std::size_t o = 0; o < m.offsets; ++o) {
        out.activation[o] = samples_ ? static_cast<double>((m.s1[o] + m.w1[o]) / n) : 0.0;
    }
    if (samples_ < 2) return out;
    out.std.resize(m.offsets);
    out.stderr_mean.resize(m.offsets);
    out.variance_se.resize(m.offsets);
    for (std::size_t o = 0; o < m.offsets; ++o) {
        const Wide mu = (m.s1[o] + m.w1[o]) / n, e2 = (m.s2[o] + m.w2[o]) / n,
                   e3 = (m.s3[o] + m.w3[o]) / n, e4 = (m.s4[o] + m.w4[o]) / n;
        const Wide central2 = std::max(Wide(0), e2 - mu * mu);
        const Wide central4 =
            std::max(Wide(0), e4 - 4 * mu * e3 + 6 * mu * mu * e2 - 3 * mu * mu * mu * mu);
        const Wide var = central2 * n / (n - 1);
        out.std[o] = static_cast<double>(std::sqrt(var));
        out.stderr_mean[o] = static_cast<double>(std::sqrt(var / n));
        out.variance_se[o] =
            static_cast<double>(std::sqrt(std::max(Wide(0), central4 - central2 * central2) / n));
    }
    return out;
}

DecayCurve ones_decay(const Schedule& s, const std::vector<std::int64_t>& offsets) {
    const std::vector<double> ones(s.head_dim, 1.0);
    DecayCurve out;
    out.offsets = offsets;
    out.activation = offset_curve(ones.data(), ones.data(), s, offsets);
    for (double& a : out.activation) a /= static_cast<double>(s.head_dim);
    return out;
}

namespace {

// What the sampled modes accumulate: the moments (activation, std, stderr) and, only when
// --check's spread test needs variance_se, the per-offset fourth moments of a per-sample pass.
class DecaySums {
  public:
    DecaySums(const Schedule& s, std::vector<std::int64_t> offsets, bool variance_se)
        : schedule_(s), offsets_(std::move(offsets)), moments_(empty_decay_moments(s)) {
        if (variance_se) per_sample_.emplace(s, offsets_);
    }
    void add(const float* q, const float* k, std::size_t n) {
        accumulate(moments_, schedule_, q, k, n);
        if (per_sample_) per_sample_->add(q, k, n);
    }
    DecayCurve result() const {
        DecayCurve curve = finish(moments_, schedule_, offsets_);
        if (per_sample_) curve.variance_se = per_sample_->result().variance_se;
        return curve;
    }

  private:
    Schedule schedule_;
    std::vector<std::int64_t> offsets_;
    DecayMoments moments_;
    std::optional<DecayAccumulator> per_sample_;
};

}  // namespace

DecayCurve gaussian_decay(const Schedule& s, const std::vector<std::int64_t>& offsets,
                          std::size_t samples, std::uint64_t seed, const Progress& progress,
                          bool variance_se) {
    DecaySums sums(s, offsets, variance_se);
    const std::size_t block = 4 * kBlockPairs, d = s.head_dim;
    std::vector<float> q(block * d), k(block * d);
    for (std::size_t done = 0; done < samples;) {
        const std::size_t n = std::min(block, samples - done);
        // Pair i draws q from stream 2i and k from stream 2i + 1 of the seed.
        parallel_for(n, [&](std::size_t begin, std::size_t end) {
            for (std::size_t r = begin; r < end; ++r) {
                fill_standard_normal(seed, 2 * (done + r), q.data() + r * d, d);
                fill_standard_normal(seed, 2 * (done + r) + 1, k.data() + r * d, d);
            }
        });
        sums.add(q.data(), k.data(), n);
        done += n;
        if (progress) progress(done, samples);
    }
    return sums.result();
}

DecayCurve repeated_gaussian_decay(const Schedule& s, const std::vector<std::int64_t>& offsets,
                                   std::uint64_t seed) {
    std::vector<float> qf(s.head_dim), kf(s.head_dim);  // pair 0 of gaussian mode's streams
    fill_standard_normal(seed, 0, qf.data(), s.head_dim);
    fill_standard_normal(seed, 1, kf.data(), s.head_dim);
    const std::vector<double> q(qf.begin(), qf.end()), k(kf.begin(), kf.end());
    DecayCurve out;
    out.offsets = offsets;
    out.samples = 1;
    out.activation = offset_curve(q.data(), k.data(), s, offsets);
    for (double& a : out.activation) a /= static_cast<double>(s.head_dim);
    return out;
}

namespace {

// Query heads per key head when `key` has the query's shape except fewer heads on axis -2
// (grouped-query attention); 1 for equal shapes. data_error otherwise.
std::size_t key_group_size(const H5Input& in, const std::string& key, const Shape& q,
                           const Shape& k) {
    if (k == q) return 1;
    const bool gqa = q.size() >= 3 && k.size() == q.size() && k[k.size() - 2] > 0 &&
                     q[q.size() - 2] % k[k.size() - 2] == 0 &&
                     std::equal(q.begin(), q.end() - 2, k.begin()) && q.back() == k.back();
    if (!gqa) {
        throw data_error(in.name(), key,
                         fmt::format("expected the query's shape {} (row r pairs with query row "
                                     "r), or fewer heads on axis -2 (GQA), found {}",
                                     shape_string(q), shape_string(k)));
    }
    return q[q.size() - 2] / k[k.size() - 2];
}

}  // namespace

DecayCurve file_decay(const H5Input& in, const std::string& query, const std::string& key,
                      const Schedule& s, const std::vector<std::int64_t>& offsets,
                      std::size_t max_samples, const Progress& progress, bool variance_se) {
    RowBlocks qb(in, query, 4 * kBlockPairs);
    if (qb.width() != s.head_dim) {
        throw data_error(in.name(), query,
                         fmt::format("expected vectors of --head-dim {} in the last axis, found "
                                     "shape {}",
                                     s.head_dim, shape_string(qb.shape())));
    }
    const Shape key_shape = in.info(key).shape;
    const std::size_t group = key_group_size(in, key, qb.shape(), key_shape);
    const std::size_t q_heads = qb.shape().size() >= 2 ? qb.shape()[qb.shape().size() - 2] : 1;
    if (group > 1 && qb.block_capacity() % q_heads != 0) {
        throw data_error(in.name(), query, "expected at most 2048 query heads for GQA pairing");
    }
    const std::size_t total = max_samples ? std::min(max_samples, qb.rows()) : qb.rows();
    DecaySums sums(s, offsets, variance_se);
    const std::size_t d = s.head_dim;
    std::vector<float> q(qb.block_capacity() * d), k(q.size()), k_rows(q.size());
    for (std::size_t done = 0; done < total;) {
        const std::size_t n = qb.next(q.data());
        if (n == 0) break;
        // Query row r (head h) pairs with key head h / group of the same position.
        read_rows(in, key, done / group, n / group, k_rows.data());
        for (std::size_t r = 0; r < n; ++r) {
            const std::size_t kr = (r / q_heads) * (q_heads / group) + (r % q_heads) / group;
            std::copy(k_rows.begin() + static_cast<std::ptrdiff_t>(kr * d),
                      k_rows.begin() + static_cast<std::ptrdiff_t>((kr + 1) * d),
                      k.begin() + static_cast<std::ptrdiff_t>(r * d));
        }
        const std::size_t use = std::min(n, total - done);
        for (std::size_t i = 0; i < use * d; ++i) {
            if (!std::isfinite(q[i]) || !std::isfinite(k[i])) {
                throw data_error(in.name(), std::isfinite(q[i]) ? key : query,
                                 fmt::format("expected finite values, found {} in row {}",
                                             std::isfinite(q[i]) ? k[i] : q[i], done + i / d));
            }
        }
        sums.add(q.data(), k.data(), use);
        done += use;
        if (progress) progress(done, total);
    }
    return sums.result();
}

namespace {
// theta's schedule, or the stored frequencies (their 2 x count leading dims rotate).
Schedule decay_schedule(const DecayParams& params, Layout layout) {
    if (params.inv_freq.empty()) return make_schedule(params.head_dim, params.theta, layout);
    Schedule s;
    s.head_dim = params.head_dim;
    s.rotary_dim = 2 * params.inv_freq.size();
    s.layout = layout;
    s.inv_freq = params.inv_freq;
    return s;
}
}  // namespace

DecayCurve compute_decay(const DecayRequest& r, const Progress& progress) {
    const DecayMode mode = r.params.mode;
    const bool file = mode == DecayMode::file;
    if (file != (r.input != nullptr) || file == r.query.empty() || file == r.key.empty()) {
        throw usage_error("file mode needs --input, --query and --key (and the other modes none)");
    }
    if (mode == DecayMode::repeated_gaussian && r.samples > 1) {
        throw usage_error("--samples: repeated-gaussian uses one q and one k (Figure 9)");
    }
    const Layout layout = r.params.layout.empty() ? Layout::half : parse_layout(r.params.layout);
    const Schedule s = apply_prope(decay_schedule(r.params, layout), r.params.p);
    switch (mode) {
        case DecayMode::ones:
            return ones_decay(s, r.offsets);
        case DecayMode::gaussian:
            return gaussian_decay(s, r.offsets, r.samples ? r.samples : 10000, r.params.seed,
                                  progress, r.variance_se);
        case DecayMode::repeated_gaussian:
            return repeated_gaussian_decay(s, r.offsets, r.params.seed);
        case DecayMode::file:
            return file_decay(*r.input, r.query, r.key, s, r.offsets, r.samples, progress,
                              r.variance_se);
    }
    return {};
}

void take_file_defaults(DecayParams& params, const H5Input& in, bool theta_given, bool p_given,
                        const std::string& layout_option) {
    const DumpAttributes attrs = read_dump_attributes(in);
    if (!theta_given && attrs.rope_theta) params.theta = *attrs.rope_theta;
    if (!p_given && attrs.p) params.p = *attrs.p;
    const Layout layout = !layout_option.empty() ? parse_layout(layout_option)
                                                 : attrs.rope_layout.value_or(Layout::half);
    params.layout = layout_name(layout);
}

double two_sided_normal_quantile(double tail) {
    double lo = 0.0, hi = 40.0;
    for (int i = 0; i < 200; ++i) {
        const double mid = 0.5 * (lo + hi);
        (std::erfc(mid / std::sqrt(2.0)) > tail ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

DecayCheck check_no_decay(const DecayCurve& curve, double alpha) {
    if (curve.std.empty()) {
        throw usage_error("--check needs a sampled curve (gaussian or file mode, >= 2 pairs)");
    }
    if (curve.variance_se.size() != curve.std.size()) {
        throw std::invalid_argument("check_no_decay: the curve was computed without variance_se");
    }
    DecayCheck c;
    c.alpha = alpha;
    const std::size_t n = curve.offsets.size();
    c.offsets = n;
    c.z_critical = two_sided_normal_quantile(alpha / (4.0 * static_cast<double>(n)));
    double var_avg = 0, se_avg = 0;
    for (std::size_t o = 0; o < n; ++o) {
        var_avg += curve.std[o] * curve.std[o] / static_cast<double>(n);
        se_avg += curve.variance_se[o] / static_cast<double>(n);
    }
    auto ratio = [](double num, double den) {
        if (num == 0) return 0.0;
        return den > 0 ? num / den : HUGE_VAL;
    };
    for (std::size_t o = 0; o < n; ++o) {
        const double zm = ratio(std::abs(curve.activation[o]), curve.stderr_mean[o]);
        if (zm > c.max_mean_z || o == 0) c.max_mean_z = zm, c.worst_mean_offset = curve.offsets[o];
        const double var = curve.std[o] * curve.std[o];
        const double zs = ratio(std::abs(var - var_avg), curve.variance_se[o] + se_avg);
        if (zs > c.max_spread_z || o == 0) {
            c.max_spread_z = zs, c.worst_spread_offset = curve.offsets[o];
        }
    }
    c.passed = c.max_mean_z <= c.z_critical && c.max_spread_z <= c.z_critical;
    return c;
}

std::string describe_decay_check(const DecayCheck& c) {
    return fmt::format(
        "max |mean|/stderr {:.3g} at offset {}, max spread z {:.3g} at offset {}, critical z "
        "{:.3g} (alpha {:g}, Bonferroni over 2 x {} offsets)",
        c.max_mean_z, c.worst_mean_offset, c.max_spread_z, c.worst_spread_offset, c.z_critical,
        c.alpha, c.offsets);
}

void write_decay_check(H5Output& out, const DecayCheck& c) {
    out.set_attr("/", "check_passed", static_cast<std::int64_t>(c.passed));
    out.set_attr("/", "check_alpha", c.alpha);
    out.set_attr("/", "check_z_critical", c.z_critical);
    out.set_attr("/", "check_max_mean_z", c.max_mean_z);
    out.set_attr("/", "check_worst_mean_offset", c.worst_mean_offset);
    out.set_attr("/", "check_max_spread_z", c.max_spread_z);
    out.set_attr("/", "check_worst_spread_offset", c.worst_spread_offset);
    out.set_attr("/", "check_rule",
                 std::string("Proposition 3.2: |mean| <= z*stderr and |var - mean var| <= "
                             "z*(se_var + mean se_var) at every offset, z two-sided normal "
                             "quantile of alpha/(4*offsets)"));
}

const std::vector<std::int64_t>& figure_2a_offsets() {
    static const std::vector<std::int64_t> offsets{0, 1, 10, 100, 1000, 5000};
    return offsets;
}

std::vector<std::int64_t> parse_offsets(const std::string& spec) {
    auto bad = [&](const std::string& why) {
        return usage_error(fmt::format("--offsets: '{}': {}", spec, why));
    };
    auto number = [&](const std::string& text) {
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
            throw bad("expected whole numbers >= 0 like 0,1,10 or ranges like 0-5000:10");
        }
        if (text.size() > 12) throw bad("offsets above 1e12 are not supported");
        return static_cast<std::int64_t>(std::stoll(text));
    };
    std::vector<std::int64_t> out;
    for (const std::string& item : split_list(spec)) {
        const std::size_t dash = item.find('-');
        if (dash == std::string::npos) {
            out.push_back(number(item));
        } else {
            const std::size_t colon = item.find(':', dash);
            const std::int64_t lo = number(item.substr(0, dash));
            const std::int64_t hi = number(item.substr(
                dash + 1, colon == std::string::npos ? std::string::npos : colon - dash - 1));
            const std::int64_t step =
                colon == std::string::npos ? 1 : number(item.substr(colon + 1));
            if (hi < lo || step == 0) throw bad("a range needs start <= stop and a step >= 1");
            if ((hi - lo) / step > 100'000'000) throw bad("more than 1e8 offsets");
            for (std::int64_t o = lo; o <= hi; o += step) out.push_back(o);
        }
    }
    return out;
}

void write_decay(H5Output& out, const DecayCurve& curve, const DecayParams& params) {
    const std::size_t n = curve.offsets.size();
    Tensor<std::int64_t> offset({n});
    offset.data = curve.offsets;
    out.write("offset", offset, {"offset"}, "tokens");
    out.set_attr("offset", "description",
                 std::string("how many tokens before the query the key sits (i - j)"));
    auto column = [&](const char* name, const std::vector<double>& values, const char* what) {
        Tensor<double> t({n});
        t.data = values;
        out.write(name, t, {"offset"}, "logit / d");
        out.set_attr(name, "description", std::string(what));
    };
    column("activation", curve.activation,
           "mean over (q, k) pairs of q^T R^(-offset) k / d (paper Figure 2; no 1/sqrt(d))");
    if (!curve.std.empty()) {
        column("std", curve.std, "sample standard deviation over pairs (ddof = 1)");
        column("stderr", curve.stderr_mean, "standard error of the mean: std / sqrt(samples)");
    }
    out.set_attr("/", "mode", decay_mode_name(params.mode));
    out.set_attr("/", "d", static_cast<std::int64_t>(params.head_dim));
    out.set_attr("/", "theta", params.theta);
    out.set_attr("/", "p", params.p);
    out.set_attr("/", "samples", static_cast<std::int64_t>(curve.samples));
    out.set_attr("/", "seed", static_cast<std::int64_t>(params.seed));
    // Which numbers a seed gives: v2 = normal_samples.hpp (v1, before issue 17: std::mt19937_64
    // and std::normal_distribution, in blocks).
    if (params.mode == DecayMode::gaussian || params.mode == DecayMode::repeated_gaussian) {
        out.set_attr("/", "sampler", std::string("v2"));
    }
    if (!params.layout.empty()) out.set_attr("/", "rope_layout", params.layout);
    if (!params.inv_freq.empty()) {
        out.set_attr("/", "rope_inv_freq", params.inv_freq);
        out.set_attr("/", "rotary_dim", static_cast<std::int64_t>(2 * params.inv_freq.size()));
    }
    if (params.layer) out.set_attr("/", "layer", static_cast<std::int64_t>(*params.layer));
}

std::string decay_plot_svg(const DecayCurve& curve, const DecayParams& params) {
    Series series;
    series.name = decay_mode_name(params.mode);
    if (curve.samples > 1)
        series.name += fmt::format(" (mean of {} pairs, +- stderr)", curve.samples);
    for (std::int64_t o : curve.offsets) series.x.push_back(static_cast<double>(o));
    series.y = curve.activation;
    series.band = curve.stderr_mean;
    LinePlot plot;
    plot.series.push_back(std::move(series));
    plot.title = fmt::format("RoPE activation vs offset: {}, d={}, theta={:g}{}",
                             decay_mode_name(params.mode), params.head_dim, params.theta,
                             params.p < 1 ? fmt::format(", p={:g}", params.p) : "");
    plot.x_label = "offset (key this many tokens back)";
    plot.x_units = "tokens";
    plot.y_label = "q^T R^-offset k / d";
    return render_lines(plot);
}

}  // namespace ropekit
