#pragma once
// The RoPE frequencies llama.cpp computes for a GGUF model (its hparams and ggml_rope_ext):
//   g_i = freq_scale · base^(−2i / n_rot) / rope_freqs[i],   i = 0 … n_rot/2 − 1
// with n_rot = {arch}.rope.dimension_count (else {arch}.attention.key_length, else
// embedding_length / head_count), base = {arch}.rope.freq_base (10⁴ when absent),
// freq_scale = 1 / factor for linear scaling ({arch}.rope.scaling.type "linear" with
// .rope.scaling.factor, or the older .rope.scale_linear), and rope_freqs.weight the optional F32
// per-frequency factors (Llama 3.x's long-context scaling, prope-convert's p-RoPE). Without
// rope_freqs.weight, llama.cpp (llama_model::get_rope_factors) divides by Phi-3's longrope pair
// instead: rope_factors_short.weight while its context is at most
// {arch}.rope.scaling.original_context_length (else {arch}.context_length), and
// rope_factors_long.weight at every position of a longer context; g_i above uses the short ones.
// {arch}.rope.scaling.attn_factor multiplies cos and sin (1 when absent). Other scaling types
// (yarn, longrope as a type) are refused. Index 0 is the highest frequency, as everywhere.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/formats/gguf.hpp"

namespace ropekit {

inline constexpr const char* kGgufRopeFreqs = "rope_freqs.weight";
inline constexpr const char* kGgufRopeFactorsShort = "rope_factors_short.weight";
inline constexpr const char* kGgufRopeFactorsLong = "rope_factors_long.weight";

struct GgufRope {
    std::string arch;  // general.architecture
    std::size_t n_rot = 0;
    double base = 10000.0;
    double freq_scale = 1.0;
    std::vector<double> factors;    // the divisors g_i uses: rope_freqs.weight, else the short
                                    // longrope factors, else 1
    std::vector<double> inv_freq;   // g_i above, rad/token
    double attention_factor = 1.0;  // rope.scaling.attn_factor
    // The longrope pair (empty when the file has none, or when rope_freqs.weight overrides it),
    // and the longest context the short factors serve.
    std::vector<double> short_factors, long_factors;
    std::size_t original_context = 0;

    // The frequencies llama.cpp uses past original_context: g_i with the long factors.
    std::vector<double> long_inv_freq() const;
};

// A numeric metadata value; `fallback` when the key is absent (data_error naming the key when
// it is absent without one, or not a number).
double gguf_number(const GgufFile& file, const std::string& key,
                   std::optional<double> fallback = std::nullopt);

// The schedule of `file`, with `theta` replacing the file's base when given. data_error(file,
// key or tensor, ...) for a missing architecture, an odd rotary dimension, another scaling type,
// rope_freqs.weight or a longrope factor tensor not F32 [n_rot/2] of positive finite factors,
// or one longrope tensor without the other.
GgufRope read_gguf_rope(const GgufFile& file, std::optional<double> theta = std::nullopt);

}  // namespace ropekit
