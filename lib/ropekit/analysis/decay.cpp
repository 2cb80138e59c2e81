#include "ropekit/analysis/decay.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <variant>

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
constexpr std::size_t kBlockPairs = 512;   // pairs per SGEMM: [512 x offsets] floats of scratch
constexpr std::size_t kOffsetChunk = 512;  // offsets per SGEMM call (a thread takes whole chunks)
}  // namespace

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
        // Each thread its own chunks of offsets: the SGEMM's columns, then their power sums (our
        // threads, single-threaded BLAS: OpenBLAS's pool does not spin beside them). Fixed
        // chunks, so that the numbers do not depend on the thread count.
        use_single_threaded_blas();
        const std::size_t chunks = (m.offsets + kOffsetChunk - 1) / kOffsetChunk;
        parallel_for(chunks, [&](std::size_t first, std::size_t last) {
            for (std::size_t chunk = first; chunk < last; ++chunk) {
                const std::size_t begin = chunk * kOffsetChunk;
                const std::size_t end = std::min(m.offsets, begin + kOffsetChunk);
                const auto ld = static_cast<blasint>(m.offsets);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                            static_cast<blasint>(end - begin), static_cast<blasint>(m.width), 1.0f,
                            m.coeffs.data(), static_cast<blasint>(m.width), m.trig.data() + begin,
                            ld, 0.0f, m.logits.data() + begin, ld);
                m.accumulate(rows, begin, end);
            }
        });
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
    // Part 0: every part's sums added in part order; the other parts keep their own.
    void add_other_parts(const WorkShare& share) {
        const std::vector<std::vector<double>> parts = share.gather(pack_decay_moments(moments_));
        for (std::size_t p = 1; p < parts.size(); ++p) {
            merge(moments_, unpack_decay_moments(parts[p], schedule_));
        }
    }
    const DecayMoments& moments() const { return moments_; }
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

// Gaussian pairs first .. first + count - 1: pair i draws q from stream 2i and k from stream
// 2i + 1 of the seed, whichever run or process draws it.
void add_gaussian_pairs(DecaySums& sums, const Schedule& s, std::size_t first, std::size_t count,
                        std::uint64_t seed, const Progress& progress) {
    const std::size_t block = 4 * kBlockPairs, d = s.head_dim;
    std::vector<float> q(block * d), k(block * d);
    for (std::size_t done = 0; done < count;) {
        const std::size_t n = std::min(block, count - done);
        parallel_for(n, [&](std::size_t begin, std::size_t end) {
            for (std::size_t r = begin; r < end; ++r) {
                const std::uint64_t pair = first + done + r;
                fill_standard_normal(seed, 2 * pair, q.data() + r * d, d);
                fill_standard_normal(seed, 2 * pair + 1, k.data() + r * d, d);
            }
        });
        sums.add(q.data(), k.data(), n);
        done += n;
        if (progress) progress(done, count);
    }
}

}  // namespace

DecayCurve gaussian_decay(const Schedule& s, const std::vector<std::int64_t>& offsets,
                          std::size_t samples, std::uint64_t seed, const Progress& progress,
                          bool variance_se) {
    DecaySums sums(s, offsets, variance_se);
    add_gaussian_pairs(sums, s, 0, samples, seed, progress);
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

// Query rows of sequences (the first axis) share.sequences() gives this part, at most the first
// max_samples rows overall (0 = all), each paired with its key row: query row r (head h) with key
// head h / group of the same position (GQA). Streamed in blocks.
void add_file_pairs(DecaySums& sums, const DecayRequest& r, const Schedule& s,
                    const WorkShare& share, const Progress& progress) {
    const H5Input& in = *r.input;
    RowBlocks qb(in, r.query, 4 * kBlockPairs);  // checks the shape; reads go by row ranges
    if (qb.width() != s.head_dim) {
        throw data_error(in.name(), r.query,
                         fmt::format("expected vectors of --head-dim {} in the last axis, found "
                                     "shape {}",
                                     s.head_dim, shape_string(qb.shape())));
    }
    const Shape& shape = qb.shape();
    const std::size_t group = key_group_size(in, r.key, shape, in.info(r.key).shape);
    const std::size_t q_heads = shape.size() >= 2 ? shape[shape.size() - 2] : 1;
    const std::size_t capacity = qb.block_capacity();
    if (group > 1 && capacity % q_heads != 0) {
        throw data_error(in.name(), r.query, "expected at most 2048 query heads for GQA pairing");
    }
    const std::size_t sequences = shape.size() >= 2 ? shape[0] : 1;
    const std::size_t per_sequence = sequences ? qb.rows() / sequences : 0;
    const auto [first, count] = share.sequences(sequences);
    const std::size_t cap = r.samples ? std::min(r.samples, qb.rows()) : qb.rows();
    const std::size_t begin = first * per_sequence, stop = (first + count) * per_sequence;
    const std::size_t end = std::max(begin, std::min(stop, cap)), d = s.head_dim;
    std::vector<float> q(capacity * d), k(q.size()), k_rows(q.size());
    for (std::size_t row = begin; row < end;) {
        const std::size_t n = std::min(capacity, stop - row), use = std::min(n, end - row);
        read_rows(in, r.query, row, n, q.data());
        read_rows(in, r.key, row / group, n / group, k_rows.data());
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t kr = (i / q_heads) * (q_heads / group) + (i % q_heads) / group;
            std::copy(k_rows.begin() + static_cast<std::ptrdiff_t>(kr * d),
                      k_rows.begin() + static_cast<std::ptrdiff_t>((kr + 1) * d),
                      k.begin() + static_cast<std::ptrdiff_t>(i * d));
        }
        for (std::size_t i = 0; i < use * d; ++i) {
            if (!std::isfinite(q[i]) || !std::isfinite(k[i])) {
                throw data_error(in.name(), std::isfinite(q[i]) ? r.key : r.query,
                                 fmt::format("expected finite values, found {} in row {}",
                                             std::isfinite(q[i]) ? k[i] : q[i], row + i / d));
            }
        }
        sums.add(q.data(), k.data(), use);
        row += use;
        if (progress) progress(row - begin, end - begin);
    }
}

// Gaussian or file mode: this part's pairs, then (part 0) every part's sums, finished.
DecayResult sampled_decay(const DecayRequest& r, const Schedule& s, const Progress& progress,
                          const WorkShare& share) {
    if (r.variance_se && share.parts > 1) {
        throw usage_error(
            "--check: its per-sample spread test does not split over processes; "
            "run rope-decay --check as one process");
    }
    DecaySums sums(s, r.offsets, r.variance_se);
    if (r.params.mode == DecayMode::gaussian) {
        const auto [first, count] = share.sequences(r.samples ? r.samples : 10000);
        add_gaussian_pairs(sums, s, r.params.first_sample + first, count, r.params.seed, progress);
    } else {
        add_file_pairs(sums, r, s, share, progress);
    }
    if (share.gather) {
        sums.add_other_parts(share);
        if (!share.writes()) return {};
    }
    return {sums.result(), sums.moments()};
}

}  // namespace

DecayCurve file_decay(const H5Input& in, const std::string& query, const std::string& key,
                      const Schedule& s, const std::vector<std::int64_t>& offsets,
                      std::size_t max_samples, const Progress& progress, bool variance_se) {
    DecayRequest request;
    request.params.mode = DecayMode::file;
    request.offsets = offsets;
    request.samples = max_samples;
    request.input = &in;
    request.query = query;
    request.key = key;
    request.variance_se = variance_se;
    return sampled_decay(request, s, progress, {}).curve;
}

Schedule decay_schedule(const DecayParams& params) {
    const Layout layout = params.layout.empty() ? Layout::half : parse_layout(params.layout);
    if (params.inv_freq.empty()) {
        return apply_prope(make_schedule(params.head_dim, params.theta, layout), params.p);
    }
    Schedule s;  // the stored frequencies: their 2 x count leading dims rotate
    s.head_dim = params.head_dim;
    s.rotary_dim = 2 * params.inv_freq.size();
    s.layout = layout;
    s.inv_freq = params.inv_freq;
    return apply_prope(s, params.p);
}

DecayResult compute_decay(const DecayRequest& r, const Progress& progress, const WorkShare& share) {
    const DecayMode mode = r.params.mode;
    const bool file = mode == DecayMode::file;
    if (file != (r.input != nullptr) || file == r.query.empty() || file == r.key.empty()) {
        throw usage_error("file mode needs --input, --query and --key (and the other modes none)");
    }
    if (mode == DecayMode::repeated_gaussian && r.samples > 1) {
        throw usage_error("--samples: repeated-gaussian uses one q and one k (Figure 9)");
    }
    if (mode != DecayMode::gaussian && r.params.first_sample != 0) {
        throw usage_error("--first-sample: only gaussian mode draws numbered samples");
    }
    if (r.params.first_sample > (std::uint64_t{1} << 62)) {
        throw usage_error("--first-sample: expected at most 2^62");
    }
    const Schedule s = decay_schedule(r.params);
    switch (mode) {
        case DecayMode::ones:
            return {ones_decay(s, r.offsets), std::nullopt};
        case DecayMode::repeated_gaussian:
            return {repeated_gaussian_decay(s, r.offsets, r.params.seed), std::nullopt};
        case DecayMode::gaussian:
        case DecayMode::file:
            return sampled_decay(r, s, progress, share);
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
    if (params.mode == DecayMode::gaussian) {
        out.set_attr("/", "first_sample", static_cast<std::int64_t>(params.first_sample));
    }
    // Which numbers a seed gives: v3 = normal_samples.hpp (v2: one scalar xoshiro256+ per
    // stream with libm Box-Muller; v1, before issue 17: std::mt19937_64 and
    // std::normal_distribution, in blocks).
    if (params.mode == DecayMode::gaussian || params.mode == DecayMode::repeated_gaussian) {
        out.set_attr("/", "sampler", std::string("v3"));
    }
    if (!params.layout.empty()) out.set_attr("/", "rope_layout", params.layout);
    if (!params.inv_freq.empty()) {
        out.set_attr("/", "rope_inv_freq", params.inv_freq);
        out.set_attr("/", "rotary_dim", static_cast<std::int64_t>(2 * params.inv_freq.size()));
    }
    if (params.layer) out.set_attr("/", "layer", static_cast<std::int64_t>(*params.layer));
}

DecayParams read_decay_params(const H5Input& in) {
    auto number = [&](const std::string& name) {
        const std::optional<double> value = in.attr_double("/", name);
        if (!value || !std::isfinite(*value)) {
            throw data_error(in.name(), "/@" + name, "expected a number (a rope-decay output)");
        }
        return *value;
    };
    auto count = [&](const std::string& name) {
        const double value = number(name);
        if (!(value >= 0) || value != std::floor(value) || value > 0x1p62) {
            throw data_error(in.name(), "/@" + name, "expected a whole number >= 0");
        }
        return static_cast<std::size_t>(value);
    };
    DecayParams params;
    const std::optional<std::string> mode = in.attr_string("/", "mode");
    const std::optional<DecayMode> parsed = find_enum(kDecayModeNames, mode.value_or(""));
    if (!parsed) {
        throw data_error(in.name(), "/@mode", "expected ones, gaussian, repeated-gaussian or file");
    }
    params.mode = *parsed;
    params.head_dim = count("d");
    params.theta = number("theta");
    params.p = number("p");
    const std::optional<AttrValue> seed = in.attr("/", "seed");  // stored as int64, any bits
    const std::int64_t* seed_bits = seed ? std::get_if<std::int64_t>(&*seed) : nullptr;
    if (!seed_bits) throw data_error(in.name(), "/@seed", "expected an integer (the seed)");
    params.seed = static_cast<std::uint64_t>(*seed_bits);
    if (params.mode == DecayMode::gaussian) params.first_sample = count("first_sample");
    params.layout = in.attr_string("/", "rope_layout").value_or("");
    if (!params.layout.empty() && !find_enum(kLayoutNames, params.layout)) {
        throw data_error(in.name(), "/@rope_layout", "expected 'half' or 'interleaved'");
    }
    if (const std::optional<AttrValue> inv_freq = in.attr("/", "rope_inv_freq")) {
        const auto* values = std::get_if<std::vector<double>>(&*inv_freq);
        if (!values || values->empty() || 2 * values->size() > params.head_dim) {
            throw data_error(in.name(), "/@rope_inv_freq",
                             "expected at most d / 2 inverse frequencies");
        }
        params.inv_freq = *values;
    }
    if (in.attr("/", "layer")) params.layer = count("layer");
    return params;
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
