// prope-convert for GGUF files: llama.cpp divides frequency i by rope_freqs.weight[i].
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/formats/gguf.hpp"
#include "ropekit/formats/gguf_rope.hpp"

namespace ropekit {

namespace fs = std::filesystem;

namespace {

// The architectures whose llama.cpp graph reads rope_freqs.weight (node-llama-cpp 3.21.1: the
// src/models/*.cpp that create LLM_TENSOR_ROPE_FREQS). The others (qwen2, qwen3, phi3, gemma*,
// gpt-neox, ...) never look at it: llama.cpp would refuse the extra tensor, or run the model
// with every frequency, so a p-RoPE GGUF of theirs cannot be written this way.
constexpr const char* kReadsRopeFreqs[] = {
    "apertus",    "arcee",          "cogvlm",     "deci",        "eagle3",
    "exaone-moe", "exaone",         "exaone4",    "falcon-h1",   "gemma4-assistant",
    "gemma4",     "granitehybrid",  "granitemoe", "granite_swa", "granite",
    "llada",      "llama",          "llama4",     "minicpm",     "mistral3",
    "nanbeige",   "pangu-embedded", "refact",     "step35"};

void require_rope_freqs_reader(const std::string& input, const std::string& arch) {
    for (const char* a : kReadsRopeFreqs) {
        if (arch == a) return;
    }
    throw data_error(input, "general.architecture",
                     fmt::format("llama.cpp's \"{}\" ignores rope_freqs.weight, the only way a "
                                 "GGUF carries p-RoPE (expected an architecture that reads it, "
                                 "such as \"llama\")",
                                 arch));
}

}  // namespace

ConvertReport convert_gguf(const std::string& input, const std::string& output,
                           const ConvertOptions& options) {
    check_output_path(output, options.force, {input});
    const GgufFile in = GgufFile::open(input);
    const PropeRequest& request = options.request;
    const GgufRope rope = read_gguf_rope(in, request.theta);
    require_rope_freqs_reader(input, rope.arch);
    const std::vector<double> original = snap_dropped(rope.inv_freq);
    const std::vector<double> target = apply_prope(original, request.p, request.reverse);

    // Combine with any existing factors: dropped frequencies are divided by 1e30 on top.
    std::vector<float> factors(target.size());
    for (std::size_t i = 0; i < target.size(); ++i) {
        const bool newly_dropped = target[i] == 0.0 && original[i] != 0.0;
        factors[i] =
            static_cast<float>(newly_dropped ? rope.factors[i] * kDroppedFactor : rope.factors[i]);
        if (!std::isfinite(factors[i])) {
            throw data_error(input, kGgufRopeFreqs,
                             fmt::format("factor {} overflows float32 when dropped", i));
        }
    }
    std::vector<GgufKV> metadata = in.metadata();
    if (request.theta) {
        const std::string key = rope.arch + ".rope.freq_base";
        bool found = false;
        for (GgufKV& kv : metadata) {
            if (kv.key == key)
                kv.value = GgufValue::f32(static_cast<float>(*request.theta)), found = true;
        }
        if (!found) metadata.push_back({key, GgufValue::f32(static_cast<float>(*request.theta))});
    }
    std::vector<GgufOutputTensor> tensors;
    const auto* factor_bytes = reinterpret_cast<const std::uint8_t*>(factors.data());
    GgufOutputTensor rope_freqs;
    rope_freqs.name = kGgufRopeFreqs;
    rope_freqs.dims = {factors.size()};
    rope_freqs.type = 0;  // F32
    rope_freqs.data = factor_bytes;
    rope_freqs.byte_size = 4 * factors.size();
    bool replaced = false;
    for (const GgufTensorInfo& t : in.tensors()) {
        if (t.name == kGgufRopeFreqs) {
            tensors.push_back(rope_freqs);
            replaced = true;
        } else {
            tensors.push_back({t.name, t.dims, t.type, in.bytes(t), t.byte_size, true, in.path(),
                               in.file_offset(t)});
        }
    }
    if (!replaced) tensors.push_back(rope_freqs);

    TempOutput temp(make_temp_beside(output));
    options.note(fmt::format("writing {} tensors ({} rope_freqs.weight)", tensors.size(),
                             replaced ? "combining the existing" : "adding"));
    write_gguf(temp.path(), in.version(), metadata, tensors, in.alignment());

    // Round trip: read the written file back as llama.cpp would and compare with the target.
    const GgufRope back = read_gguf_rope(GgufFile::open(temp.path()), std::nullopt);
    for (std::size_t i = 0; i < target.size(); ++i) {
        const double t = target[i], g = back.inv_freq[i];
        const bool ok =
            t == 0.0 ? std::abs(g) <= kDroppedTolerance : std::abs(g - t) <= kKeptTolerance * t;
        if (!ok) {
            throw data_error(
                input, "",
                fmt::format("round-trip check failed: frequency {} reads back as {:.9g}, "
                            "intended {:.9g}",
                            i, g, t));
        }
    }
    ConvertReport report;
    report.kept = {describe_kept(target)};
    report.rewritten = 1;
    temp.commit_to(output);
    return report;
}

std::vector<std::string> ConvertReport::lines() const {
    std::vector<std::string> out = notes;
    out.insert(out.end(), kept.begin(), kept.end());
    return out;
}

ConvertReport convert(InputKind kind, const std::string& input, const std::string& output,
                      const ConvertOptions& options) {
    if (kind != InputKind::hdf5 && (input == "-" || output == "-")) {
        throw usage_error("'-' (stdin/stdout) works only for HDF5 dumps and tables");
    }
    switch (kind) {
        case InputKind::hf_directory:
            return convert_hf_directory(input, output, options);
        case InputKind::gguf:
            return convert_gguf(input, output, options);
        case InputKind::hdf5:
            break;
    }
    return convert_hdf5(input, output, options);
}

std::string input_kind_name(InputKind kind) {
    return enum_name(kInputKindNames, kind);
}

InputKind parse_input_kind(const std::string& name) {
    return parse_enum(kInputKindNames, name, "--input-kind");
}

InputKind detect_input_kind(const std::string& path) {
    if (fs::is_directory(path)) {
        if (fs::is_regular_file(fs::path(path) / "config.json")) return InputKind::hf_directory;
        throw data_error(path, "config.json",
                         "missing (a Hugging Face checkpoint directory needs one)");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path, "", "cannot open");
    char head[8] = {};
    in.read(head, 8);
    if (in.gcount() >= 4 && std::memcmp(head, "GGUF", 4) == 0) return InputKind::gguf;
    if (in.gcount() == 8 && std::memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) return InputKind::hdf5;
    throw data_error(path, "", "neither a checkpoint directory, a GGUF file nor an HDF5 file");
}

}  // namespace ropekit
