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

namespace ropekit {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRopeFreqs = "rope_freqs.weight";

struct GgufRope {
    std::string arch;
    std::size_t n_rot = 0;
    double base = 10000.0;
    double freq_scale = 1.0;
    std::vector<double> factors;   // existing rope_freqs (1 when absent)
    std::vector<double> inv_freq;  // what llama.cpp uses: freq_scale * base^(-2i/n_rot) / factor
};

double number(const GgufFile& f, const std::string& key, double fallback) {
    const GgufValue* v = f.find(key);
    if (!v) return fallback;
    if (!v->is_number()) throw data_error(f.path(), key, "expected a number");
    return v->as_double();
}

// The schedule llama.cpp builds from the file's metadata and rope_freqs (theta overrides base).
GgufRope read_rope(const GgufFile& f, std::optional<double> theta) {
    GgufRope r;
    const GgufValue* arch = f.find("general.architecture");
    if (!arch || arch->type != GgufType::string) {
        throw data_error(f.path(), "general.architecture",
                         "missing (expected the model architecture)");
    }
    r.arch = arch->as_string();
    const std::string a = r.arch + ".";
    double n_rot = number(f, a + "rope.dimension_count", 0);
    if (n_rot == 0) n_rot = number(f, a + "attention.key_length", 0);
    if (n_rot == 0) {
        const double heads = number(f, a + "attention.head_count", 0);
        if (heads > 0) n_rot = number(f, a + "embedding_length", 0) / heads;
    }
    if (!(n_rot >= 2) || std::fmod(n_rot, 2.0) != 0) {
        throw data_error(f.path(), a + "rope.dimension_count",
                         fmt::format("expected an even rotary dimension, got {}", n_rot));
    }
    r.n_rot = static_cast<std::size_t>(n_rot);
    r.base = theta.value_or(number(f, a + "rope.freq_base", 10000.0));
    if (const GgufValue* type = f.find(a + "rope.scaling.type")) {
        const std::string t = type->type == GgufType::string ? type->as_string() : "?";
        if (t == "linear") {
            r.freq_scale = 1.0 / number(f, a + "rope.scaling.factor", 1.0);
        } else if (t != "none") {
            throw data_error(f.path(), a + "rope.scaling.type",
                             "rope scaling '" + t +
                                 "' cannot be carried by rope_freqs; convert the unscaled model");
        }
    } else if (f.find(a + "rope.scale_linear")) {
        r.freq_scale = 1.0 / number(f, a + "rope.scale_linear", 1.0);
    }
    r.factors.assign(r.n_rot / 2, 1.0);
    if (const GgufTensorInfo* t = f.find_tensor(kRopeFreqs)) {
        if (t->type != 0 || t->dims.size() != 1 || t->dims[0] != r.n_rot / 2) {
            throw data_error(f.path(), kRopeFreqs, fmt::format("expected F32 [{}]", r.n_rot / 2));
        }
        const std::vector<float> existing = f.read_float(kRopeFreqs);
        for (std::size_t i = 0; i < existing.size(); ++i) {
            if (!(existing[i] > 0) || !std::isfinite(existing[i])) {
                throw data_error(f.path(), kRopeFreqs,
                                 fmt::format("factor {} is {}", i, existing[i]));
            }
            r.factors[i] = existing[i];
        }
    }
    for (std::size_t i = 0; i < r.n_rot / 2; ++i) {
        r.inv_freq.push_back(
            r.freq_scale *
            std::pow(r.base, -2.0 * static_cast<double>(i) / static_cast<double>(r.n_rot)) /
            r.factors[i]);
    }
    return r;
}

}  // namespace

ConvertReport convert_gguf(const std::string& input, const std::string& output,
                           const ConvertOptions& options) {
    check_output_path(output, options.force, {input});
    const GgufFile in = GgufFile::open(input);
    const PropeRequest& request = options.request;
    const GgufRope rope = read_rope(in, request.theta);
    const std::vector<double> original = snap_dropped(rope.inv_freq);
    const std::vector<double> target = apply_prope(original, request.p, request.reverse);

    // Combine with any existing factors: dropped frequencies are divided by 1e30 on top.
    std::vector<float> factors(target.size());
    for (std::size_t i = 0; i < target.size(); ++i) {
        const bool newly_dropped = target[i] == 0.0 && original[i] != 0.0;
        factors[i] =
            static_cast<float>(newly_dropped ? rope.factors[i] * kDroppedFactor : rope.factors[i]);
        if (!std::isfinite(factors[i])) {
            throw data_error(input, kRopeFreqs,
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
    rope_freqs.name = kRopeFreqs;
    rope_freqs.dims = {factors.size()};
    rope_freqs.type = 0;  // F32
    rope_freqs.data = factor_bytes;
    rope_freqs.byte_size = 4 * factors.size();
    bool replaced = false;
    for (const GgufTensorInfo& t : in.tensors()) {
        if (t.name == kRopeFreqs) {
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
    const GgufRope back = read_rope(GgufFile::open(temp.path()), std::nullopt);
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
