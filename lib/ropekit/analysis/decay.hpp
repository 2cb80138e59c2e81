#pragma once
// Does RoPE decay attention with distance? (paper Figure 2, Figure 9, Proposition 3.2)
// activation(o) = q^T R^(-o) k / d, o = offset = how many tokens back the key sits.
//   ones:              q = k = all ones, closed form (2/d) sum_c cos(o g_c)
//   gaussian:          M independent pairs q, k ~ N(0, I); mean, std and stderr over the pairs
//   repeated-gaussian: one Gaussian q and one k, the same at every position (Figure 9)
//   file:              real (q, k) pairs, row r of the query dataset with row r of the key one
// Sampled curves come from two moments of the pairs' chunk coefficients (decay_moments.hpp):
// O(pairs d^2 + offsets d^2) work. Only --check's spread test (variance_se, a fourth moment per
// offset) also runs the per-sample DecayAccumulator.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/analysis/decay_moments.hpp"
#include "ropekit/core/work_share.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

enum class DecayMode { ones, gaussian, repeated_gaussian, file };
inline constexpr EnumNames<DecayMode, 4> kDecayModeNames{
    {{DecayMode::ones, "ones"},
     {DecayMode::gaussian, "gaussian"},
     {DecayMode::repeated_gaussian, "repeated-gaussian"},
     {DecayMode::file, "file"}}};
std::string decay_mode_name(DecayMode mode);
DecayMode parse_decay_mode(const std::string& name);  // usage_error naming --mode

// Per-sample pass: every pair's curve (one SGEMM per block of pairs: [pairs x 2C] coefficients
// times the [2C x offsets] cos/sin table), sums of x, x^2, x^3, x^4 per offset in double.
class DecayAccumulator {
  public:
    DecayAccumulator(const Schedule& s, std::vector<std::int64_t> offsets);
    ~DecayAccumulator();
    DecayAccumulator(const DecayAccumulator&) = delete;
    DecayAccumulator& operator=(const DecayAccumulator&) = delete;

    // n pairs: q and k are [n x head_dim] row-major.
    void add(const float* q, const float* k, std::size_t n);
    std::size_t samples() const { return samples_; }
    DecayCurve result() const;

  private:
    struct Impl;
    Impl* impl_;
    std::size_t samples_ = 0;
};

using Progress = std::function<void(std::size_t done, std::size_t total)>;

DecayCurve ones_decay(const Schedule& s, const std::vector<std::int64_t>& offsets);
// Pair i draws q and k from streams 2i and 2i + 1 of `seed` (normal_samples.hpp).
// variance_se: also fill DecayCurve::variance_se (a per-sample pass, for check_no_decay).
DecayCurve gaussian_decay(const Schedule& s, const std::vector<std::int64_t>& offsets,
                          std::size_t samples, std::uint64_t seed, const Progress& progress = {},
                          bool variance_se = false);
DecayCurve repeated_gaussian_decay(const Schedule& s, const std::vector<std::int64_t>& offsets,
                                   std::uint64_t seed);
// Pairs row r of `query` with row r of `key` (both [..., d], same leading shape), at most
// max_samples of them (0 = all), streamed in blocks.
DecayCurve file_decay(const H5Input& in, const std::string& query, const std::string& key,
                      const Schedule& s, const std::vector<std::int64_t>& offsets,
                      std::size_t max_samples, const Progress& progress = {},
                      bool variance_se = false);

struct DecayParams {
    DecayMode mode = DecayMode::ones;
    std::size_t head_dim = 0;
    double theta = 0;
    double p = 1;
    std::uint64_t seed = 0;
    std::size_t first_sample = 0;  // gaussian mode: pairs first_sample, first_sample + 1, ...
    std::string layout;            // file mode only
    // File mode, from a dump's layer_rope_inv_freq / rope_inv_freq (scaling and the dump's p
    // included): the frequencies used instead of theta's, rotating the leading 2 x count dims
    // (at most head_dim); empty = theta's. p applies on top.
    std::vector<double> inv_freq;
    std::optional<std::size_t> layer;  // the dump layer inv_freq is from, when per layer
};
// The schedule the curve is computed under: inv_freq, or d and theta; layout (half when empty);
// p-RoPE applied.
Schedule decay_schedule(const DecayParams& params);
// The parameters an output of rope-decay records (write_decay); data_error naming the attribute.
DecayParams read_decay_params(const H5Input& in);

// One run of rope-decay: which curve, at which offsets, from what.
struct DecayRequest {
    DecayParams params;                 // mode, d, theta, p, seed; layout (file mode)
    std::vector<std::int64_t> offsets;  // tokens back, each >= 0
    std::size_t samples = 0;            // 0 = the mode's default (gaussian 10000, file all rows)
    const H5Input* input = nullptr;     // file mode
    std::string query, key;             // file mode datasets
    bool variance_se = false;           // for check_no_decay: adds a per-sample pass
};
// The curve and, for the sampled modes (gaussian, file), the sums behind it (mergeable).
struct DecayResult {
    DecayCurve curve;
    std::optional<DecayMoments> moments;
};
// Checks the combination (usage_error: file mode without input/query/key or the reverse,
// --samples for repeated-gaussian, first_sample outside gaussian mode), builds the schedule and
// computes the curve. Under a WorkShare of several parts, the sampled modes split their pairs
// (gaussian: the sample range; file: the query's first axis, sequences) and part 0 adds every
// part's sums in part order; the other parts return an empty result. variance_se (a per-sample
// pass that does not merge) is refused there.
DecayResult compute_decay(const DecayRequest& request, const Progress& progress = {},
                          const WorkShare& share = {});
// File mode: theta, p and layout from the file's rope_theta, p and rope_layout root attributes
// where the command line gave none (layout_option empty); half layout if neither says.
void take_file_defaults(DecayParams& params, const H5Input& in, bool theta_given, bool p_given,
                        const std::string& layout_option);

// Proposition 3.2 as a statistical test, with a Bonferroni rule over offsets so that a true
// "no decay" curve fails with probability at most alpha:
//   mean:   |activation(o)| <= z * stderr(o) at every offset,
//   spread: |var(o) - var_avg| <= z * (se_var(o) + mean_o se_var(o)) at every offset,
// with z = the two-sided normal quantile for alpha / (2 * 2 * offsets) (alpha split over the two
// families, then over offsets). The spread bound adds standard errors, which holds whatever the
// correlation between offsets (the same pairs are used at every offset).
struct DecayCheck {
    double alpha = 0;
    double z_critical = 0;
    double max_mean_z = 0;
    std::int64_t worst_mean_offset = 0;
    double max_spread_z = 0;
    std::int64_t worst_spread_offset = 0;
    std::size_t offsets = 0;
    bool passed = false;
};
// The curve needs variance_se (computed with variance_se = true).
DecayCheck check_no_decay(const DecayCurve& curve, double alpha = 1e-3);
// "max |mean|/stderr 2.31 at offset 17, max spread z 1.20 at offset 4000, critical z 5.33
// (alpha 0.001, Bonferroni over 2 x 5001 offsets)"
std::string describe_decay_check(const DecayCheck& check);
// Root attributes check_passed, check_alpha, check_z_critical, check_max_mean_z, ...
void write_decay_check(H5Output& out, const DecayCheck& check);
// z with P(|Z| > z) = tail for a standard normal Z.
double two_sided_normal_quantile(double tail);

// The paper's offsets for Figure 2a: 0, 1, 10, 100, 1000, 5000.
const std::vector<std::int64_t>& figure_2a_offsets();
// "0,1,10" or "0-100" or "0-5000:10" (start-stop:step), sorted as given, each >= 0.
std::vector<std::int64_t> parse_offsets(const std::string& spec);

// Datasets offset, activation (+ std, stderr) and attributes mode/d/theta/p/samples/seed (and
// first_sample in gaussian mode).
void write_decay(H5Output& out, const DecayCurve& curve, const DecayParams& params);
// Figure 2 style SVG (svg_plot.hpp): activation against offset, shaded +- stderr when sampled.
std::string decay_plot_svg(const DecayCurve& curve, const DecayParams& params);

}  // namespace ropekit
