#pragma once
// Keys and heads that attend where you choose (paper Proposition 3.1, Theorem 5.3).
// Offsets count tokens back (o = i - j, docs/conventions.md): the key k = R^r q (chunk-wise
// rotation of q by +r g_c) gives a(o) = q^T R^(-o) k = sum_c |q^(c)|^2 cos((r - o) g_c), which is
// largest at o = r. A head whose queries are psi and keys R^r psi at every position attends r
// tokens back; the smallest ||psi||^2 that makes it do so with weight >= 1 - eps is found by
// bisection on the exact softmax of the last position (it sees every key, so it is the worst).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/logit_curve.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

// Frequency chunks written by people, 1-based with 1 = the highest frequency (as in the paper):
// "all", "1-4", "1,3,9-12", "top:8" (the 8 highest), "bottom:8" (the 8 lowest).
// Returns sorted 0-based chunk indices; usage_error naming --chunks for anything else.
std::vector<std::size_t> parse_chunk_spec(const std::string& spec, std::size_t chunk_count);

// The query a construction starts from: all ones (seed and file_spec empty), Gaussian from
// `seed`, or row `row` of FILE:DATASET (file_spec, "-:DATASET" = stdin; leading axes flattened).
struct QueryChoice {
    std::vector<double> values;
    std::string source;   // "ones", "gaussian seed 3", "dump.h5:hook_q row 4"
    std::string file;     // the input file, if any (never to be overwritten)
    std::string history;  // its provenance, continued by the output
};
QueryChoice choose_query(std::size_t head_dim, std::optional<std::uint64_t> seed,
                         const std::string& file_spec, std::size_t row);

// Zeroes every chunk of v (head_dim entries) that is not listed.
void keep_chunks(std::vector<double>& v, const Schedule& s, const std::vector<std::size_t>& chunks);

// k = R^offset q: the key whose logit with q peaks `offset` tokens back.
std::vector<double> key_for_offset(std::vector<double> q, const Schedule& s, std::int64_t offset);

struct KeyConstruction {
    std::vector<double> query, key;
    std::int64_t target_offset = 0;
    std::vector<std::int64_t> offsets;  // 0 .. tokens - 1
    std::vector<double> logit;          // q^T R^(-o) k at each offset (no 1/sqrt(d))
    CurvePeak peak;                     // argmax_offset = offsets[peak.argmax]
};
KeyConstruction construct_key(const std::vector<double>& query, const Schedule& s,
                              std::int64_t offset, std::size_t tokens);
void write_key_construction(H5Output& out, const KeyConstruction& k, const Schedule& s,
                            double theta, const std::string& chunks, const std::string& source);

// --head diagonal | previous | offset:R
struct HeadSpec {
    std::string kind;  // "diagonal", "previous", "offset"
    std::int64_t offset = 0;
};
HeadSpec parse_head_spec(const std::string& spec);

// The scale of a head whose every logit is `scale` * psi_hat^T R^(j-i) R^offset psi_hat (unit
// psi_hat): with the 1/sqrt(d) of real models, ||psi||^2 = scale * sqrt(d).
struct HeadScale {
    double scale_min = 0;     // smallest scale with alpha_{i, i-offset} >= 1 - eps, all i
    double scale_bound = 0;   // the paper's sufficient bound ln((N-1)(1-eps)/eps) / (1 - rho)
    double runner_up = 0;     // rho: largest logit at another offset, relative to the peak
    double alpha_at_min = 0;  // alpha_{N-1, N-1-offset} at scale_min (>= 1 - eps)
};
// `unit_logits`[o] for o = 0 .. N-1 must peak (strictly) at `offset`. Throws data_error when no
// scale can reach 1 - eps (another offset ties with the target).
HeadScale minimal_head_scale(const std::vector<double>& unit_logits, std::size_t offset,
                             double epsilon);
// alpha_{N-1, N-1-offset} = 1 / sum_o exp(scale (l(o) - l(offset))), summed in double.
double last_row_weight(const std::vector<double>& unit_logits, std::size_t offset, double scale);

struct HeadOptions {
    HeadSpec head;
    std::size_t tokens = 1024;
    double epsilon = 0.01;
    bool model_scale = true;    // scores carry 1/sqrt(d) as in real models (TransformerLens)
    double headroom = 1e-3;     // stored scale = scale_min * (1 + headroom), see docs
    bool write_pattern = true;  // hook_pattern and hook_attn_scores ([1, 1, N, N] f32 each)
};
struct ConstructedHeadResult {  // what the built head reaches
    HeadScale scale;
    double psi_norm2 = 0;   // ||psi||^2 actually stored
    double attn_scale = 1;  // scores = attn_scale * rot_q . rot_k
    double min_alpha = 0;   // smallest alpha_{i, i-offset}: from the float32 pattern when one is
                            // computed, else the exact last-row value at the stored scale
};
struct ConstructedHead {
    ConstructedHeadResult result;
    std::size_t tokens = 0, head_dim = 0;
    std::int64_t offset = 0;
    // [batch 1, pos N, head 1, d] float32: pre-RoPE q = psi, k = R^offset psi; post-RoPE R^i q.
    Tensor<float> q, k, rot_q, rot_k;
};
// Builds the head from psi (its direction is used; its norm is set by the minimal scale).
ConstructedHead build_head(const std::vector<double>& psi, const Schedule& s,
                           const HeadOptions& options);
// Rows [row_begin, row_end) of the scores and the pattern, computed with attention.hpp from the
// post-RoPE vectors: `scores` and `pattern` are [rows x N] (-inf / 0 above the diagonal). Returns
// the smallest alpha_{i, i-offset} over those rows with i >= offset (1 if there are none).
double head_pattern_rows(const ConstructedHead& head, std::size_t row_begin, std::size_t row_end,
                         float* scores, float* pattern);
// All N rows.
double head_pattern(const ConstructedHead& head, float* scores, float* pattern);
// A one-layer dump (docs/formats.md): blocks.0.attn.hook_q/hook_k/hook_rot_q/hook_rot_k
// [1, N, 1, d], and with options.write_pattern hook_attn_scores/hook_pattern [1, 1, N, N],
// streamed in blocks of rows (about 4 MiB each) so memory stays O(N d);
// root attributes of dump.hpp plus attn_scale, scale_min, scale_bound, psi_norm2, min_alpha.
void write_head_dump(H5Output& out, ConstructedHead& head, const Schedule& s, double theta,
                     const HeadOptions& options);

}  // namespace ropekit
