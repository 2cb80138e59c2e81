// prope-convert for GGUF files: llama.cpp divides frequency i by rope_freqs.weight[i], or by
// Phi-3's longrope factors rope_factors_short/long.weight[i].
#include <algorithm>
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
// src/models/*.cpp that create LLM_TENSOR_ROPE_FREQS). The others (qwen2, qwen3, gemma*,
// gpt-neox, ...) never look at it: llama.cpp would refuse the extra tensor, or run the model
// with every frequency, so a p-RoPE GGUF of theirs cannot be written this way.
constexpr const char* kReadsRopeFreqs[] = {
    "apertus",    "arcee",          "cogvlm",     "deci",        "eagle3",
    "exaone-moe", "exaone",         "exaone4",    "falcon-h1",   "gemma4-assistant",
    "gemma4",     "granitehybrid",  "granitemoe", "granite_swa", "granite",
    "llada",      "llama",          "llama4",     "minicpm",     "mistral3",
    "nanbeige",   "pangu-embedded", "refact",     "step35"};
// phi3 reads the longrope pair rope_factors_short/long.weight [n_rot/2] instead (optional
// tensors: a file without them gets both).
constexpr const char* kReadsOnlyFactorPair[] = {"phi3"};

bool listed(const std::string& arch, const char* const* begin, const char* const* end) {
    return std::find_if(begin, end, [&](const char* a) { return arch == a; }) != end;
}

// The tensors that carry p-RoPE: the longrope pair where the file has it (it serves contexts
// past the original one too) or llama.cpp reads only the pair, else rope_freqs.weight.
bool writes_factor_pair(const std::string& input, const GgufRope& rope) {
    if (!rope.short_factors.empty()) return true;
    if (listed(rope.arch, std::begin(kReadsOnlyFactorPair), std::end(kReadsOnlyFactorPair))) {
        return true;
    }
    if (listed(rope.arch, std::begin(kReadsRopeFreqs), std::end(kReadsRopeFreqs))) return false;
    throw data_error(input, "general.architecture",
                     fmt::format("llama.cpp's \"{}\" ignores rope_freqs.weight and the longrope "
                                 "factors, the only ways a GGUF carries p-RoPE (expected an "
                                 "architecture that reads them, such as \"llama\" or \"phi3\")",
                                 rope.arch));
}

// One factor tensor as rewritten: the frequency table it gives and the F32 divisors.
struct FactorTensor {
    const char* name;
    std::vector<double> target;
    std::vector<float> factors;
};

// p-RoPE on a table llama.cpp computes by dividing by `factors`: the newly dropped frequencies
// get their factor multiplied by 1e30 (~1e-30 rad/token in llama.cpp's float32 arithmetic).
FactorTensor drop_factors(const std::string& input, const char* name,
                          const std::vector<double>& inv_freq, const std::vector<double>& factors,
                          const PropeRequest& request) {
    const std::vector<double> original = snap_dropped(inv_freq);
    FactorTensor t{name, apply_prope(original, request.p, request.reverse), {}};
    for (std::size_t i = 0; i < t.target.size(); ++i) {
        const bool newly_dropped = t.target[i] == 0.0 && original[i] != 0.0;
        t.factors.push_back(
            static_cast<float>(newly_dropped ? factors[i] * kDroppedFactor : factors[i]));
        if (!std::isfinite(t.factors.back())) {
            throw data_error(input, name,
                             fmt::format("factor {} overflows float32 when dropped", i));
        }
    }
    return t;
}

std::vector<FactorTensor> factor_tensors(const std::string& input, const GgufRope& rope,
                                         const PropeRequest& request) {
    if (!writes_factor_pair(input, rope)) {
        return {drop_factors(input, kGgufRopeFreqs, rope.inv_freq, rope.factors, request)};
    }
    return {drop_factors(input, kGgufRopeFactorsShort, rope.inv_freq, rope.factors, request),
            drop_factors(input, kGgufRopeFactorsLong, rope.long_inv_freq(),
                         rope.long_factors.empty() ? rope.factors : rope.long_factors, request)};
}

// The input's metadata with rope.freq_base replaced by --theta when given.
std::vector<GgufKV> output_metadata(const GgufFile& in, const std::string& arch,
                                    const PropeRequest& request) {
    std::vector<GgufKV> metadata = in.metadata();
    if (!request.theta) return metadata;
    const std::string key = arch + ".rope.freq_base";
    const GgufValue base = GgufValue::f32(static_cast<float>(*request.theta));
    for (GgufKV& kv : metadata) {
        if (kv.key == key) {
            kv.value = base;
            return metadata;
        }
    }
    metadata.push_back({key, base});
    return metadata;
}

// The input's tensors, the factor tensors replaced in place or appended.
std::vector<GgufOutputTensor> output_tensors(const GgufFile& in,
                                             const std::vector<FactorTensor>& factors,
                                             std::size_t& replaced) {
    const auto output = [](const FactorTensor& f) {
        return GgufOutputTensor{f.name,
                                {f.factors.size()},
                                0,  // F32
                                reinterpret_cast<const std::uint8_t*>(f.factors.data()),
                                4 * f.factors.size()};
    };
    std::vector<GgufOutputTensor> tensors;
    std::vector<bool> written(factors.size(), false);
    for (const GgufTensorInfo& t : in.tensors()) {
        const auto f = std::find_if(factors.begin(), factors.end(),
                                    [&](const FactorTensor& x) { return t.name == x.name; });
        if (f != factors.end()) {
            tensors.push_back(output(*f));
            written[static_cast<std::size_t>(f - factors.begin())] = true;
            continue;
        }
        tensors.push_back(
            {t.name, t.dims, t.type, in.bytes(t), t.byte_size, true, in.path(), in.file_offset(t)});
    }
    replaced = static_cast<std::size_t>(std::count(written.begin(), written.end(), true));
    for (std::size_t i = 0; i < factors.size(); ++i) {
        if (!written[i]) tensors.push_back(output(factors[i]));
    }
    return tensors;
}

// Round trip: the written file read back as llama.cpp would, against the intended tables.
void check_written(const std::string& input, const std::string& written,
                   const std::vector<FactorTensor>& factors) {
    const GgufRope back = read_gguf_rope(GgufFile::open(written), std::nullopt);
    for (const FactorTensor& f : factors) {
        const bool is_long = std::string(f.name) == kGgufRopeFactorsLong;
        const std::vector<double> got = is_long ? back.long_inv_freq() : back.inv_freq;
        for (std::size_t i = 0; i < f.target.size(); ++i) {
            const double t = f.target[i], g = got[i];
            const bool ok =
                t == 0.0 ? std::abs(g) <= kDroppedTolerance : std::abs(g - t) <= kKeptTolerance * t;
            if (!ok) {
                throw data_error(input, "",
                                 fmt::format("round-trip check failed: frequency {} of {} reads "
                                             "back as {:.9g}, intended {:.9g}",
                                             i, f.name, g, t));
            }
        }
    }
}

}  // namespace

ConvertReport convert_gguf(const std::string& input, const std::string& output,
                           const ConvertOptions& options) {
    check_output_path(output, options.force, {input});
    const GgufFile in = GgufFile::open(input);
    const PropeRequest& request = options.request;
    const GgufRope rope = read_gguf_rope(in, request.theta);
    const std::vector<FactorTensor> factors = factor_tensors(input, rope, request);
    std::size_t replaced = 0;
    const std::vector<GgufOutputTensor> tensors = output_tensors(in, factors, replaced);

    TempOutput temp(make_temp_beside(output));
    options.note(fmt::format("writing {} tensors ({} {}{})", tensors.size(),
                             replaced > 0 ? "combining the existing" : "adding", factors[0].name,
                             factors.size() > 1 ? fmt::format(" and {}", factors[1].name) : ""));
    write_gguf(temp.path(), in.version(), output_metadata(in, rope.arch, request), tensors,
               in.alignment());
    check_written(input, temp.path(), factors);
    ConvertReport report;
    report.kept = {describe_kept(factors[0].target)};
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
