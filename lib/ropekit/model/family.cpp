#include "ropekit/model/family.hpp"

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

namespace {

// clang-format off
constexpr Family kFamilies[] = {
    // model_type  gguf_arch  gguf_layout           bias   qk_norm fused  window gemma  gemma2 gemma3 neox
    {"llama",   "llama",  Layout::interleaved, false, false, false, false, false, false},
    {"mistral", "llama",  Layout::interleaved, false, false, false, true,  false, false},
    {"qwen2",   "qwen2",  Layout::half,        true,  false, false, false, false, false},
    {"qwen3",   "qwen3",  Layout::half,        false, true,  false, false, false, false},
    {"phi3",    "phi3",   Layout::half,        false, false, true,  true,  false, false},
    {"gemma",   "gemma",  Layout::half,        false, false, false, false, true,  false},
    {"gemma2",  "gemma2", Layout::half,        false, false, false, true,  true,  true},
    {"gemma3_text", "gemma3", Layout::half,    false, true,  false, true,  true,  true,  true,  false},
    {"gpt_neox", "gptneox", Layout::half,      false, false, false, false, false, false, false, true},
};
// clang-format on

std::string names(bool gguf) {
    std::string out;
    for (const Family& f : kFamilies) {
        const std::string name = gguf ? f.gguf_arch : f.model_type;
        if (out.find('"' + name + '"') != std::string::npos) continue;
        out += (out.empty() ? "" : ", ") + ('"' + name + '"');
    }
    return out;
}

}  // namespace

const Family& hf_family(const std::string& model_type, const std::string& file) {
    for (const Family& f : kFamilies) {
        if (model_type == f.model_type) return f;
    }
    throw data_error(file, "model_type",
                     fmt::format("expected one of the families rope-dump runs ({}), found \"{}\"",
                                 names(false), model_type));
}

const Family& gguf_family(const std::string& arch, const std::string& file) {
    for (const Family& f : kFamilies) {
        if (arch == f.gguf_arch) return f;
    }
    throw data_error(file, "general.architecture",
                     fmt::format("expected one of the GGUF architectures rope-dump runs ({}), "
                                 "found \"{}\"",
                                 names(true), arch));
}

}  // namespace ropekit
