#pragma once
// RoPE maths in the paper's notation (docs/conventions.md):
//   frequency index k = 0 is the highest frequency g_1 = 1 rad/token,
//   g_k = theta^(-2k/rotary_dim) (0-based k), logit a(n) = q^T R^n k with n = j - i.
// All angles are computed in double so positions up to 1e7 keep full accuracy.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/enum_names.hpp"

namespace ropekit {

// How the two dims of frequency chunk k sit in memory.
//   half:        (k, k + rotary_dim/2)  Hugging Face Llama/Gemma/Qwen
//   interleaved: (2k, 2k + 1)           GPT-J, Meta's original Llama, llama.cpp "normal", llama2.c
enum class Layout { half, interleaved };
inline constexpr EnumNames<Layout, 2> kLayoutNames{
    {{Layout::half, "half"}, {Layout::interleaved, "interleaved"}}};

std::string layout_name(Layout layout);
Layout parse_layout(const std::string& name);  // usage_error naming --layout for anything else

struct Schedule {
    std::size_t head_dim = 0;    // dims per head
    std::size_t rotary_dim = 0;  // leading dims that rotate (== head_dim unless partial rotary)
    Layout layout = Layout::half;
    std::vector<double> inv_freq;   // rotary_dim/2 entries, rad/token, index 0 = highest
    double attention_factor = 1.0;  // multiplies cos/sin (yarn, longrope); 1 for plain RoPE

    std::size_t frequency_count() const { return inv_freq.size(); }
    // The two dims (within a head) of frequency chunk k.
    std::pair<std::size_t, std::size_t> chunk_dims(std::size_t k) const;
};

// g_k = theta^(-2k/rotary_dim), k = 0 .. rotary_dim/2 - 1.
std::vector<double> default_inv_freq(std::size_t rotary_dim, double theta);

// Plain RoPE schedule. Throws usage_error for odd dims, rotary_dim > head_dim, theta <= 1.
Schedule make_schedule(std::size_t head_dim, double theta, Layout layout = Layout::half,
                       std::size_t rotary_dim = 0 /* 0 = head_dim */);

// p-RoPE: how many of n frequencies are kept, m = floor(p * n) (with a 1e-9 guard so that
// p = 0.3, n = 10 keeps 3, not 2). p must be in [0, 1].
std::size_t prope_kept_count(double p, std::size_t n);

// A frequency at or below this many rad/token stands for a dropped one: how p-RoPE is carried by
// formats that can only divide frequencies (llama.cpp's rope_freqs.weight, Hugging Face's
// llama3 and longrope factors), which prope-convert writes as a factor of 1e30.
inline constexpr double kDroppedTolerance = 1e-20;

// Frequencies at or below kDroppedTolerance become exactly 0, so that p-RoPE counts them as
// dropped, a dump records them as not rotated, and converting twice gives the same table.
std::vector<double> snap_dropped(std::vector<double> inv_freq);

// p-RoPE keeps the highest m frequencies and sets the others to 0 (not rotated).
// reverse = the paper's ablation: keep the lowest m, zero the highest n - m.
std::vector<double> apply_prope(std::vector<double> inv_freq, double p, bool reverse = false);
Schedule apply_prope(Schedule schedule, double p, bool reverse = false);

// In place: v <- R^position v (chunk-wise rotation by position * g_k, scaled by
// attention_factor). v has head_dim entries; dims past rotary_dim are left alone (or scaled by
// nothing: attention_factor applies only to rotated dims, as in transformers' cos/sin).
void rotate(float* v, const Schedule& schedule, double position);
void rotate(double* v, const Schedule& schedule, double position);
// The same for `count` vectors `stride` elements apart at one position (e.g. every head of a
// [pos, head, dim] row): identical results, with cos/sin computed once per chunk, not per vector.
void rotate(float* v, std::size_t count, std::size_t stride, const Schedule& schedule,
            double position);
// Exact inverse of rotate at the same position (divides out attention_factor).
void unrotate(float* v, const Schedule& schedule, double position);

// a(n) = q^T R^n k, accumulated in double. attention_factor is not applied (pure geometry).
double relative_logit(const float* q, const float* k, const Schedule& schedule, double n);
double relative_logit(const double* q, const double* k, const Schedule& schedule, double n);

}  // namespace ropekit
