#pragma once
// Activation dumps: TransformerLens names and shapes (docs/formats.md).
//   blocks.{L}.attn.hook_q / hook_k        [batch, pos, head, d_head]  before RoPE
//   blocks.{L}.attn.hook_rot_q / hook_rot_k [batch, pos, head, d_head] after RoPE
//   blocks.{L}.attn.hook_pattern           [batch, head, query_pos, key_pos] softmax
//   blocks.{L}.attn.hook_attn_scores       [batch, head, query_pos, key_pos] logits
// Keys may have fewer heads than queries (GQA). Root attributes describe the model.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/core/enum_names.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

enum class Hook { q, k, rot_q, rot_k, pattern, scores };
// What --name and --what call the hooks.
inline constexpr EnumNames<Hook, 6> kHookNames{{{Hook::q, "q"},
                                                {Hook::k, "k"},
                                                {Hook::rot_q, "rot_q"},
                                                {Hook::rot_k, "rot_k"},
                                                {Hook::pattern, "pattern"},
                                                {Hook::scores, "scores"}}};
// Their TransformerLens dataset names, which {hook} stands for in a name template.
inline constexpr EnumNames<Hook, 6> kHookDatasetNames{{{Hook::q, "hook_q"},
                                                       {Hook::k, "hook_k"},
                                                       {Hook::rot_q, "hook_rot_q"},
                                                       {Hook::rot_k, "hook_rot_k"},
                                                       {Hook::pattern, "hook_pattern"},
                                                       {Hook::scores, "hook_attn_scores"}}};

inline constexpr const char* kDefaultNameTemplate = "blocks.{layer}.attn.{hook}";

const char* hook_name(Hook hook);  // "hook_q", ..., "hook_pattern", "hook_attn_scores"
// "q", "k", "rot_q", "rot_k", "pattern", "scores" or a dataset name ("hook_q"); usage_error
// naming `option` for anything else.
Hook parse_hook(const std::string& name, const std::string& option);
// The dataset of `hook` in `layer`, from a template with {layer} and {hook}.
std::string hook_dataset(std::size_t layer, Hook hook,
                         const std::string& name_template = kDefaultNameTemplate);
// Axis names stored with each hook's dataset.
std::vector<std::string> hook_axes(Hook hook);
bool is_vector_hook(Hook hook);  // q, k, rot_q, rot_k
// "q", "k", "rot_q", "rot_k", "pattern", "scores" (or the hook_* names); "all" = every hook.
// A comma-separated list, in the order given, without repeats. Throws usage_error naming
// `option`.
std::vector<Hook> parse_hooks(const std::string& list, const std::string& option);

// Root attributes of a dump. Absent ones stay nullopt; tools take command-line overrides.
struct DumpAttributes {
    std::optional<double> rope_theta;
    // A rope_theta string that is not a number: kept, not thrown, so that tools that never use
    // theta still read the dump; DumpReader::schedule reports it when theta is needed.
    std::optional<std::string> unreadable_rope_theta;
    std::optional<Layout> rope_layout;
    std::optional<std::size_t> rotary_dim;
    std::optional<int> bos;  // 1: position 0 of every sequence is a BOS token
    std::optional<std::string> model;
    std::optional<double> p;           // p-RoPE fraction the dump was made with
    std::optional<double> attn_scale;  // logits = attn_scale * q.k (models: 1/sqrt(head_dim))
    // The inverse frequencies each layer applied (rad/token, 0 = not rotated): rope_inv_freq
    // [rotary_dim/2] for every layer, layer_rope_inv_freq [n_layers, rotary_dim/2] per layer.
    std::optional<std::vector<double>> rope_inv_freq;
    std::optional<Tensor<double>> layer_rope_inv_freq;
};

DumpAttributes read_dump_attributes(const H5Input& in);
// The inverse frequencies `layer` applied, from the tables: its row of layer_rope_inv_freq, else
// rope_inv_freq; nullopt when the dump has neither. data_error naming `file` when the per-layer
// table has no such row.
std::optional<std::vector<double>> stored_frequencies(const DumpAttributes& attributes,
                                                      std::size_t layer, const std::string& file);
// rope_theta as h5py users store it: a number or a string holding one ("10000.0"). Sets
// `unreadable` (and returns nullopt) for any other string.
std::optional<double> read_rope_theta(const H5Input& in, std::optional<std::string>& unreadable);
void write_dump_attributes(H5Output& out, const DumpAttributes& attributes);

}  // namespace ropekit
