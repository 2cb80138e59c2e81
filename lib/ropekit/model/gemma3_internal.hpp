#pragma once
// Gemma 3 (family.hpp's gemma3 flag) on top of Gemma 2: the layer pattern and the two RoPE
// schedules, read from a Hugging Face config.json or from the GGUF llama.cpp's converter writes.
// Private to the model module (hf_llama.cpp and gguf_llama.cpp call these).
//
// Which layers slide: config.json's layer_types (transformers 4.53+) where present, else its
// sliding_window_pattern n (default 6): layer l slides unless (l + 1) % n == 0. A config giving
// both must agree. GGUF: {arch}.attention.sliding_window_pattern (6 when absent, as llama.cpp
// assumes; the converter never writes it), and no window at all when
// {arch}.attention.sliding_window is absent (llama.cpp then runs every layer global).
// Sliding layers use the local schedule: rope_local_base_freq (default 10000), no scaling; the
// others rope_theta with rope_scaling. transformers v5's per-layer-type rope_parameters
// ("sliding_attention", "full_attention") are read as well.
#include <nlohmann/json.hpp>
#include <string>

#include "ropekit/formats/gguf.hpp"
#include "ropekit/model/llama_model.hpp"
#include "ropekit/rope/hf_rope.hpp"

namespace ropekit::gemma3 {

// data_error for the multimodal config (model_type "gemma3", its text model in text_config and
// its weights under language_model): rope-dump reads the text-only Gemma3ForCausalLM directory.
void refuse_multimodal(const nlohmann::ordered_json& config, const std::string& file);

// The sliding layers and attention scale (query_pre_attn_scalar, 256 when absent) of
// config.json, after apply_gemma2 read the window and soft-caps.
void apply_hf(const nlohmann::ordered_json& config, LlamaConfig& c, const std::string& file);

// The parameters of the global ("full_attention") and local ("sliding_attention") schedules.
struct HfSchedules {
    HfRopeParameters global, local;
};
HfSchedules hf_schedules(const nlohmann::ordered_json& config, const HfRopeConfig& rope,
                         const std::string& file);

// The window, pattern, local base and attention scale (llama.cpp: 1/sqrt(head_dim), except
// 1/sqrt(dim / heads) at the 62 layers of 27B) of a gemma3 GGUF, replacing read_gemma2's. Refuses
// rope_freqs.weight, which llama.cpp's gemma3 ignores.
void read_gguf(const GgufFile& f, const std::string& prefix, LlamaConfig& c);

// The local schedule of a GGUF: plain RoPE at c.rope_local_theta over the global's rotary dims
// (llama.cpp's freq_scale_swa is 1 for gemma3).
Schedule gguf_local_schedule(const LlamaConfig& c, const Schedule& global);

}  // namespace ropekit::gemma3
