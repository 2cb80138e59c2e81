#pragma once
// Which frequencies each head uses (the paper's Section 4, Figures 3 and 4): the mean 2-norm of
// every 2-D RoPE chunk of queries and keys, over batch and positions. By Cauchy-Schwarz,
// |q^(k)T rho k^(k)| <= ||q^(k)|| ||k^(k)||, so these norms bound what each frequency can add to
// a logit. Chunk norms are rotation-invariant: pre- and post-RoPE vectors give the same result.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "ropekit/core/tensor.hpp"
#include "ropekit/dump/dump_reader.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/plot/svg_plot.hpp"

namespace ropekit {

struct FreqNormsOptions {
    bool queries = true, keys = true;
    bool exclude_bos = false;         // leave out position 0 of every sequence
    std::vector<std::size_t> layers;  // indices into freq_norms_layers(); empty = all of them
    double band_ratio = 4.0;          // see find_bands
    // Read contiguous f32/f16 datasets straight from the file (DumpReader::sequence_in_place);
    // false: always through HDF5. Both give identical results (tested).
    bool read_in_place = true;
};

struct TensorNorms {
    std::string dataset_hook;  // "hook_q" or "hook_rot_q" (keys: "hook_k" / "hook_rot_k")
    Tensor<double> norms;      // [layer, head, freq], frequency index 0 = highest
    Tensor<double> sums;       // [layer, head, freq] of chunk norms: norms = sums / positions
    // Partial rotary (rotary_dim < head_dim) only, else empty: [layer, head], the 2-norm of the
    // dims that never rotate, which belong to no frequency.
    Tensor<double> unrotated_norms, unrotated_sums;
};

struct FreqNorms {
    std::vector<std::size_t> layers;  // dump layer of each row
    Schedule schedule;                // the first row's; inv_freq empty when theta is unknown
    // [layer, freq]: each row's own inverse frequencies (DumpReader::schedule(layer)), rad/token;
    // empty when theta is unknown. Every row has schedule's head_dim, rotary_dim and layout.
    Tensor<double> layer_frequency;
    std::size_t positions = 0;  // vectors averaged per head (batch x positions used)
    TensorNorms q, k;           // empty norms when not requested
    // (layer, hook) datasets read, and how many of them in place (mapped, not through HDF5).
    std::size_t datasets_read = 0, datasets_read_in_place = 0;
};

// The dump's layers that have queries (keys when `queries` is false): pre-RoPE hooks, else
// post-RoPE ones. Throws data_error when there are none.
std::vector<std::size_t> freq_norms_layers(const DumpReader& dump, bool queries);

// Streams the dump one layer and one sequence at a time. `progress(done, total)` after each
// layer.
FreqNorms compute_freq_norms(const DumpReader& dump, const FreqNormsOptions& options,
                             const std::function<void(std::size_t, std::size_t)>& progress = {});

// norms = sums / positions: what compute_freq_norms ends with, and what a merge of several
// results (summed sums and positions) does to give the result of the union.
void finish_freq_norms(FreqNorms& result);

// Sequences in the dump (of the first layer's queries, keys when `queries` is false).
std::size_t freq_norms_sequences(const DumpReader& dump, bool queries);

// Adds a part's sums and positions into `total` (same layers, heads, frequencies); finish after.
void add_freq_norms(FreqNorms& total, const FreqNorms& part);
// The sums and positions as one vector, and back into a result shaped like `like` (unfinished).
std::vector<double> pack_freq_norms(const FreqNorms& result);
FreqNorms unpack_freq_norms(const FreqNorms& like, const std::vector<double>& packed);

// The result write_freq_norms wrote, from its sufficient statistics (q_norm_sums, k_norm_sums,
// positions_averaged), finished. Throws data_error naming the file when one is missing.
FreqNorms read_freq_norms(const H5Input& in, FreqNormsOptions& options);

// Mean over heads: [layer, head, freq] -> [layer, freq] (Figure 3).
Tensor<double> mean_over_heads(const Tensor<double>& norms);

// Share of a head's summed chunk norm in the highest quarter of frequencies (indices
// 0 .. ceil(F/4) - 1).
double top_quarter_share(const double* head_norms, std::size_t frequencies);

// Low-frequency bands of one head: chunks k in the lower half (k >= F/2) whose norm is at least
// `ratio` times BOTH the median of the layer's lower-half chunk norms (all heads) and the
// median of this head's own lower-half chunk norms. `layer_norms` is [head, freq].
std::vector<std::size_t> find_bands(const double* layer_norms, std::size_t heads,
                                    std::size_t frequencies, std::size_t head, double ratio);

// The per-head summary: "tensor layer head top_quarter_share bands" as TSV, bands written as
// "freq:ratio_to_layer_median" separated by commas ("-" for none).
std::string freq_norms_summary(const FreqNorms& result, double band_ratio);

// Datasets q_norms, k_norms [layer, head|kv_head, freq], layer_q_norms / layer_k_norms
// [layer, freq], layer [layer] (the dump's layer numbers), layer_frequency [layer, freq] and,
// when every layer has the same, frequency [freq] (rad/token), and the sufficient statistics
// q_norm_sums / k_norm_sums with the count positions_averaged. With partial rotary also
// q_unrotated_norms / k_unrotated_norms [layer, head] and their _sums.
void write_freq_norms(H5Output& out, const FreqNorms& result, const FreqNormsOptions& options);

// Figure 3 (layers x frequencies, mean over heads) and Figure 4 (heads x frequencies of one
// layer), frequency on y with the highest at the top.
Heatmap layer_norms_figure(const FreqNorms& result, bool queries);
Heatmap head_norms_figure(const FreqNorms& result, bool queries, std::size_t layer_row);

}  // namespace ropekit
