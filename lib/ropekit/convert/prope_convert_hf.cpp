// prope-convert for Hugging Face checkpoint directories.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/dtype.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/formats/safetensors.hpp"

namespace ropekit {

namespace fs = std::filesystem;

namespace {

bool is_inv_freq(const std::string& name) {
    const std::string suffix = "rotary_emb.inv_freq";
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The safetensors files of the checkpoint, with the index checked against the shards.
std::vector<std::string> weight_files(const fs::path& dir) {
    const fs::path single = dir / "model.safetensors";
    const fs::path index_path = dir / "model.safetensors.index.json";
    if (fs::exists(index_path)) {
        const SafetensorsIndex index = read_safetensors_index(index_path.string());
        std::map<std::string, std::set<std::string>> names;
        for (const std::string& shard : index.shards) {
            const SafetensorsFile f = SafetensorsFile::open((dir / shard).string());
            for (const auto& t : f.tensors()) names[shard].insert(t.name);
        }
        for (const auto& [tensor, shard] : index.weight_map) {
            if (!names[shard].count(tensor)) {
                throw data_error(
                    index_path.string(), "weight_map",
                    "'" + tensor + "' is mapped to " + shard + ", which does not hold it");
            }
        }
        for (const auto& [shard, held] : names) {
            for (const std::string& tensor : held) {
                const auto it = index.weight_map.find(tensor);
                if (it == index.weight_map.end() || it->second != shard) {
                    throw data_error(index_path.string(), "weight_map",
                                     "'" + tensor + "' in " + shard + " is not mapped to it");
                }
            }
        }
        std::vector<std::string> files;
        for (const std::string& shard : index.shards) files.push_back((dir / shard).string());
        return files;
    }
    if (fs::exists(single)) return {single.string()};
    throw data_error(
        dir.string(), "",
        "no model.safetensors or model.safetensors.index.json (pickle checkpoints are not "
        "converted: save them as safetensors first)");
}

// The bytes of an inv_freq buffer holding `g` in `dtype`.
std::vector<std::uint8_t> encode_inv_freq(const std::vector<double>& g, const std::string& dtype,
                                          const std::string& file, const std::string& name) {
    std::vector<std::uint8_t> out;
    const auto push = [&](const void* p, std::size_t n) {
        const auto* b = static_cast<const std::uint8_t*>(p);
        out.insert(out.end(), b, b + n);
    };
    for (double x : g) {
        if (dtype == "F32") {
            const float f = static_cast<float>(x);
            push(&f, 4);
        } else if (dtype == "F64") {
            push(&x, 8);
        } else if (dtype == "F16") {
            const std::uint16_t h = float_to_half(static_cast<float>(x));
            push(&h, 2);
        } else if (dtype == "BF16") {
            const std::uint16_t h = float_to_bf16(static_cast<float>(x));
            push(&h, 2);
        } else {
            throw data_error(file, name, "inv_freq of dtype " + dtype + " cannot be rewritten");
        }
    }
    return out;
}

// Rewrites one shard with its inv_freq buffers replaced; every other tensor is streamed from the
// input mapping, so its bytes are identical.
void rewrite_shard(const SafetensorsFile& in, const std::string& out_path,
                   const std::vector<double>& table) {
    std::vector<SafetensorsSpec> specs;
    for (const auto& t : in.tensors()) specs.push_back({t.name, t.dtype, t.shape});
    SafetensorsWriter writer(out_path, specs, in.metadata());
    const ReadOnlyFd source(in.path());
    for (const auto& t : in.tensors()) {
        if (!is_inv_freq(t.name)) {
            writer.append_copy(source.get(), in.file_offset(t), in.bytes(t),
                               static_cast<std::size_t>(t.byte_size()));
            continue;
        }
        if (element_count(t.shape) != table.size()) {
            throw data_error(in.path(), t.name,
                             fmt::format("has {} entries but the config's table has {}",
                                         element_count(t.shape), table.size()));
        }
        const std::vector<std::uint8_t> bytes = encode_inv_freq(table, t.dtype, in.path(), t.name);
        writer.append(bytes.data(), bytes.size());
    }
    writer.finish();
}

void copy_unchanged(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec) throw data_error(to.string(), "", "cannot copy " + from.string() + ": " + ec.message());
}

bool inside(const fs::path& child, const fs::path& parent) {
    const fs::path c = fs::weakly_canonical(child), p = fs::weakly_canonical(parent);
    auto ci = c.begin(), pi = p.begin();
    for (; pi != p.end(); ++pi, ++ci) {
        if (ci == c.end() || *ci != *pi) return false;
    }
    return true;
}

// The shards (canonical paths) that carry saved inv_freq buffers (Llama-2-era checkpoints).
std::set<std::string> shards_with_inv_freq(const fs::path& in_dir) {
    std::set<std::string> shards;
    for (const std::string& file : weight_files(in_dir)) {
        const SafetensorsFile f = SafetensorsFile::open(file);
        for (const auto& t : f.tensors()) {
            if (is_inv_freq(t.name)) shards.insert(fs::weakly_canonical(file).string());
        }
    }
    return shards;
}

}  // namespace

ConvertReport convert_hf_directory(const std::string& input, const std::string& output,
                                   const ConvertOptions& options) {
    const fs::path in_dir(input);
    const fs::path config_path = in_dir / "config.json";
    if (!fs::is_regular_file(config_path)) throw data_error(input, "config.json", "missing");
    if (inside(output, input) || inside(input, output)) {
        throw usage_error(fmt::format(
            "{}: the output must not contain or lie inside the input directory {}", output, input));
    }
    check_output_path(output, options.force, {input});

    const auto config = read_json_file(config_path.string());
    const HfPropePlan plan = interpret_json(config_path.string(), [&] {
        return plan_hf_prope(config, config_path.string(), options.request);
    });
    ConvertReport report;
    for (const PropeLayerPlan& layer : plan.layers) {
        report.kept.push_back((layer.layer_type.empty() ? "" : layer.layer_type + ": ") +
                              describe_kept(layer.target.inv_freq));
    }
    report.notes = plan.notes;

    const std::set<std::string> to_rewrite = shards_with_inv_freq(in_dir);
    if (!to_rewrite.empty() && plan.layers.size() > 1) {
        throw data_error(
            input, "",
            "saved rotary_emb.inv_freq buffers with per-layer-type schedules are not supported");
    }

    TempOutput temp(make_temp_dir_beside(output));
    bool warned_copy = false;
    for (auto it = fs::recursive_directory_iterator(in_dir);
         it != fs::recursive_directory_iterator(); ++it) {
        const fs::path rel = fs::relative(it->path(), in_dir);
        const fs::path dst = fs::path(temp.path()) / rel;
        if (it->is_directory()) {
            fs::create_directories(dst);
            continue;
        }
        if (!it->is_regular_file()) continue;  // sockets, dangling links: nothing a loader reads
        if (rel == "config.json") {
            std::ofstream out(dst, std::ios::binary);
            out << plan.config.dump(2) << '\n';
            if (!out.flush()) throw data_error(output, "config.json", "write failed (disk full?)");
            continue;
        }
        const std::string canonical = fs::weakly_canonical(it->path()).string();
        if (to_rewrite.count(canonical)) {
            options.note(fmt::format("rewriting {} (rotary_emb.inv_freq)", rel.string()));
            rewrite_shard(SafetensorsFile::open(it->path().string()), dst.string(),
                          plan.layers.front().target.inv_freq);
            ++report.rewritten;
            continue;
        }
        // Follow symlinks (Hugging Face cache snapshots link into blobs/): link the file itself.
        if (!options.copy &&
            ::linkat(AT_FDCWD, it->path().c_str(), AT_FDCWD, dst.c_str(), AT_SYMLINK_FOLLOW) == 0) {
            ++report.linked;
            continue;
        }
        if (!options.copy && !warned_copy) {
            report.notes.push_back(fmt::format(
                "hard links failed ({}); copied unchanged files instead", std::strerror(errno)));
            warned_copy = true;
        }
        copy_unchanged(it->path(), dst);
        ++report.copied;
    }
    temp.commit_to(output);
    report.notes.push_back(fmt::format(
        "{}: config.json rewritten ({}), {} files hard-linked, {} copied, {} shards rewritten",
        output, encoding_name(options.request.encoding), report.linked, report.copied,
        report.rewritten));
    return report;
}

}  // namespace ropekit
