#pragma once
// Which heads attend by position alone (the paper's Definition 5.1, Figure 5). A head is
// positional at offset r when, on every sequence, its attention from query i to key i - r
// carries at least 1 - epsilon of the mass (averaged over the queries that have such a key).
// Patterns come from the dump (hook_pattern) or are computed from post-RoPE queries and keys,
// one SGEMM per (sequence, head). Alongside: TransformerLens's previous_token_head scores
// (head_detector.py: "mul" and "abs", with exclude_bos / exclude_current_token) so results can
// be compared with detect_head, and, when q and k are available, which frequency chunks carry
// the logit at the head's offset.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/core/enum_names.hpp"
#include "ropekit/core/tensor.hpp"
#include "ropekit/dump/dump_reader.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/plot/svg_plot.hpp"

namespace ropekit {

enum class HeadSource { pattern, qk };
inline constexpr EnumNames<HeadSource, 2> kHeadSourceNames{
    {{HeadSource::pattern, "pattern"}, {HeadSource::qk, "qk"}}};

struct PositionalOptions {
    HeadSource from = HeadSource::pattern;
    double epsilon = 0.1;        // positional when min over sequences of the mass >= 1 - epsilon
    std::size_t max_offset = 8;  // offsets 0 .. max_offset are searched
    bool exclude_bos = false;    // ignore key 0 (renormalise over keys >= 1); TL's exclude_bos
    bool exclude_current_token = false;  // TL scores only: ignore the diagonal
    // qk: logits = logit_scale * q.k; unset = 1/sqrt(d_head), as models do.
    std::optional<double> logit_scale;
    std::vector<std::size_t> layers;  // indices into positional_head_layers(); empty = all
    std::size_t picture_tokens = 48;  // top-left corner of sequence 0 kept for the figures
};

// What one sequence's [T, T] pattern of one head says.
struct SequenceStats {
    std::vector<double> offset_mass;  // [max_offset + 1]: mean over queries of A[i, i - r]
    double prev_mul = 0, prev_abs = 0;
};

// Offset masses for r = 0 .. max_offset (NaN where the sequence is too short), and the two
// TransformerLens previous-token scores. `pattern` is a causal [T, T] row-stochastic matrix.
SequenceStats sequence_stats(const float* pattern, std::size_t tokens,
                             const PositionalOptions& options);

// TransformerLens's compute_head_attention_similarity_score against the previous-token detection
// pattern D[i, i-1] = 1: "mul" = sum(A' * D) / sum(A'), "abs" = 1 - sum|A - D| / T, where the
// excluded column 0 / diagonal are zeroed first. (TL rounds "abs" to 3 decimals; we do not.)
double previous_token_score_mul(const float* pattern, std::size_t tokens, bool exclude_bos,
                                bool exclude_current_token);
double previous_token_score_abs(const float* pattern, std::size_t tokens, bool exclude_bos,
                                bool exclude_current_token);

// Per head, summed over sequences: the sufficient statistics behind every number of its
// PositionalHeadResult, which rope-merge adds (minimum for mass_min) across parts of a dump.
struct HeadStatistics {
    std::vector<double> mass_sum, mass_min;        // [offset]; NaN / inf where too short
    double prev_mul = 0, prev_abs = 0;             // sums of the TL scores
    std::vector<std::vector<double>> chunk_logit;  // [offset][chunk], summed over queries
    std::vector<double> logit;                     // [offset], whole dot product
};

// One head of one layer: where it attends, how much, and whether that makes it positional.
struct PositionalHeadResult {
    std::size_t layer = 0, head = 0, offset = 0;
    double mass = 0, min_mass = 0;  // at `offset`: mean over sequences, minimum over sequences
    bool positional = false;
    double prev_mul = 0, prev_abs = 0;    // TL scores, mean over sequences
    double top_freq_share = 0;            // NaN without q and k
    std::vector<double> offset_mass;      // mean over sequences, per offset
    std::vector<double> frequency_share;  // per chunk, share of the logit at `offset`
    Tensor<float> picture;                // [n, n] corner of sequence 0's pattern
    HeadStatistics statistics;            // what the numbers above come from
};

// A head's numbers from its statistics over `sequences` sequences (layer, head and picture
// left unset): means over sequences, the dominant offset, the positional test, frequency shares
// when `frequencies` > 0 (attributed).
PositionalHeadResult finish_head(const HeadStatistics& statistics, std::size_t sequences,
                                 double epsilon, std::size_t frequencies);

struct PositionalHeads {
    std::vector<std::size_t> layers;  // dump layer numbers
    std::size_t heads = 0, frequencies = 0, sequences = 0, tokens = 0;
    bool attributed = false;  // frequency shares computed
    double logit_scale = 0;   // qk: the multiplier of q.k that was used
    std::string source;       // what the patterns came from, for the record
    // [layer, freq]: each layer's inverse frequencies (rad/token) when known, else empty.
    Tensor<double> layer_frequency;
    PositionalOptions options;
    std::vector<PositionalHeadResult> results;  // layer-major
};

// --scale: "auto" = the dump's attn_scale attribute when it has one, else 1/sqrt(d_head) (unset);
// "sqrt" = 1/sqrt(d_head) (unset); "none" = 1, the paper's convention.
std::optional<double> logit_scale_choice(const std::string& choice,
                                         const DumpAttributes& attributes);

// The dump's layers find_positional_heads can read (PositionalOptions::layers indexes them):
// those with hook_pattern (from pattern), or with hook_rot_q, else hook_q (from qk). Throws
// data_error when there are none.
std::vector<std::size_t> positional_head_layers(const DumpReader& dump, HeadSource from);

// `progress(done, total)` after each layer.
PositionalHeads find_positional_heads(
    const DumpReader& dump, const PositionalOptions& options,
    const std::function<void(std::size_t, std::size_t)>& progress = {});

// "layer head offset mass min_mass positional prev_mul prev_abs top_freq_share", one row per
// head, 0-based; positional is 1/0, top_freq_share "nan" when not computed.
std::string heads_table_tsv(const PositionalHeads& result);
std::string heads_table_json(const PositionalHeads& result);  // list of objects, null for NaN

// The heads' numbers and, for rope-merge, their statistics (mass_sum, mass_min, prev_mul_sum,
// prev_abs_sum, logit_sum, chunk_logit_sum) with the count `sequences`.
void write_positional_heads(H5Output& out, const PositionalHeads& result);
void write_head_statistics(H5Output& out, const PositionalHeads& result);
// A written result back from its statistics, heads finished (no pictures). data_error naming the
// file when the statistics are missing.
PositionalHeads read_positional_heads(const H5Input& in);
// Every head's numbers again from its statistics and r.sequences (after a merge added them).
void finish_positional_heads(PositionalHeads& r);

// Sequences in the dump (of the first layer's patterns, or its queries for --from qk).
std::size_t positional_head_sequences(const DumpReader& dump, HeadSource from);
// Adds a part's statistics (minimum for mass_min) and sequences into `total`; finish after.
void add_positional_heads(PositionalHeads& total, const PositionalHeads& part);
// The statistics and sequences as one vector, and back into a result shaped like `like`.
std::vector<double> pack_positional_heads(const PositionalHeads& result);
PositionalHeads unpack_positional_heads(const PositionalHeads& like,
                                        const std::vector<double>& packed);

// Figure 5: a head's attention pattern (query on y from the top, key on x).
Heatmap pattern_figure(const PositionalHeadResult& head, const std::string& source);
// Overview: mass at the dominant offset per layer (y) and head (x).
Heatmap mass_figure(const PositionalHeads& result);

}  // namespace ropekit
