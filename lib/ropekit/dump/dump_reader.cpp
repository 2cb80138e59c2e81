#include "ropekit/dump/dump_reader.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/finite.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/dump/dump_files.hpp"

namespace ropekit {
namespace {

// Larger than any attention head (Gemma: 256; the largest in use are 512).
constexpr std::size_t kMaxHeadDim = 65536;

std::string regex_escape(const std::string& s) {
    static const std::string special = R"(\^$.|?*+()[]{})";
    std::string out;
    for (char c : s) {
        if (special.find(c) != std::string::npos) out += '\\';
        out += c;
    }
    return out;
}

std::string strip_slash(std::string s) {
    while (!s.empty() && s.front() == '/') s.erase(s.begin());
    return s;
}

}  // namespace

std::string DumpNames::template_for(Hook hook) const {
    auto it = per_hook.find(hook);
    return it != per_hook.end() ? it->second : general;
}

DumpNames parse_dump_names(const std::vector<std::string>& values, std::optional<Hook> primary) {
    DumpNames names;
    for (const std::string& value : values) {
        auto eq = value.find('=');
        std::string tmpl = eq == std::string::npos ? value : value.substr(eq + 1);
        if (tmpl.find("{layer}") == std::string::npos) {
            throw usage_error("--name '" + value + "': the template needs {layer}");
        }
        if (eq != std::string::npos) {
            names.per_hook[parse_hook(value.substr(0, eq), "--name")] = tmpl;
        } else if (tmpl.find("{hook}") != std::string::npos) {
            names.general = tmpl;
        } else if (primary) {
            names.per_hook[*primary] = tmpl;
        } else {
            throw usage_error("--name '" + value +
                              "' names one tensor but this command reads several: write "
                              "HOOK=TEMPLATE (e.g. q=" +
                              value + ") or use {hook}");
        }
    }
    return names;
}

bool VectorAxes::has_batch() const {
    return std::find(names.begin(), names.end(), "batch") != names.end();
}

std::size_t VectorAxes::index(const std::string& axis) const {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), axis) - names.begin());
}

VectorAxes parse_vector_axes(const std::string& spec) {
    VectorAxes axes;
    axes.names = split_list(spec);
    std::vector<std::string> sorted = axes.names;
    std::sort(sorted.begin(), sorted.end());
    const bool ok = sorted == std::vector<std::string>{"dim", "head", "pos"} ||
                    sorted == std::vector<std::string>{"batch", "dim", "head", "pos"};
    if (!ok) {
        throw usage_error("--axes '" + spec +
                          "': expected pos, head and dim once each, optionally batch, comma "
                          "separated (e.g. batch,pos,head,dim or pos,head,dim)");
    }
    return axes;
}

DumpOverrides DumpOptions::overrides() const {
    DumpOverrides o;
    if (theta != 0) {
        if (!(theta > 1)) throw usage_error("--theta must be > 1");
        o.theta = theta;
    }
    if (!layout.empty()) o.layout = parse_layout(layout);
    if (rotary_dim != 0) o.rotary_dim = rotary_dim;
    if (bos >= 0) o.bos = bos;
    return o;
}

DumpReader open_dump(const std::vector<H5Input>& shards, const DumpOptions& options,
                     std::optional<Hook> primary) {
    return DumpReader(shards, parse_dump_names(options.names, primary),
                      parse_vector_axes(options.axes), options.overrides());
}

std::string bos_note(const DumpAttributes& attributes, bool exclude_bos) {
    if (!attributes.bos) return "";
    if (*attributes.bos == 1 && !exclude_bos) {
        return "position 0 is a BOS token (bos = 1) and is included; --exclude-bos leaves it out";
    }
    if (*attributes.bos == 0 && exclude_bos) {
        return "position 0 is not a BOS token (bos = 0) but --exclude-bos leaves it out anyway";
    }
    return "";
}

DumpReader::DumpReader(const H5Input& in, DumpNames names, VectorAxes axes,
                       const DumpOverrides& overrides)
    : shards_{&in}, names_(std::move(names)), axes_(std::move(axes)) {
    attributes_ = read_dump_attributes(in);
    if (overrides.theta) attributes_.rope_theta = overrides.theta;
    theta_override_ = overrides.theta.has_value();
    if (overrides.layout) attributes_.rope_layout = overrides.layout;
    if (overrides.rotary_dim) attributes_.rotary_dim = overrides.rotary_dim;
    if (overrides.bos) attributes_.bos = overrides.bos;
    check_layer_table();
}

void DumpReader::check_layer_table() const {
    if (theta_override_ || !attributes_.layer_rope_inv_freq) return;
    for (const EnumSpelling<Hook>& hook : kHookNames) {
        const std::vector<std::size_t> found = layers(hook.value);
        if (!found.empty()) (void)stored_frequencies(attributes_, found.back(), input().name());
    }
}

DumpReader::DumpReader(const std::vector<H5Input>& shards, DumpNames names, VectorAxes axes,
                       const DumpOverrides& overrides)
    : DumpReader(shards.at(0), std::move(names), std::move(axes), overrides) {
    for (std::size_t i = 1; i < shards.size(); ++i) shards_.push_back(&shards[i]);
    check_shards_agree(shards_);
}

std::string DumpReader::dataset(std::size_t layer, Hook hook) const {
    return strip_slash(hook_dataset(layer, hook, names_.template_for(hook)));
}

bool DumpReader::has(std::size_t layer, Hook hook) const {
    return input().has(dataset(layer, hook));
}

std::vector<std::size_t> DumpReader::layers(Hook hook) const {
    std::string tmpl = strip_slash(names_.template_for(hook));
    // {layer} -> digits, {hook} -> this hook's name, everything else literal.
    std::string pattern = regex_escape(tmpl);
    auto replace = [&pattern](const std::string& key, const std::string& value) {
        const std::string escaped = regex_escape(key);
        for (std::size_t pos; (pos = pattern.find(escaped)) != std::string::npos;) {
            pattern.replace(pos, escaped.size(), value);
        }
    };
    replace("{hook}", regex_escape(hook_name(hook)));
    replace("{layer}", "([0-9]+)");
    const std::regex re(pattern);
    std::set<std::size_t> found;
    for (const std::string& name : input().dataset_names()) {
        std::smatch m;
        if (!std::regex_match(name, m, re)) continue;
        std::size_t layer = std::stoul(m[1]);
        if (dataset(layer, hook) == name) found.insert(layer);  // "01" is not layer 1
    }
    return {found.begin(), found.end()};
}

VectorShape DumpReader::shard_vector_shape(const H5Input& in, const std::string& name) const {
    const Shape shape = in.info(name).shape;
    if (shape.size() != axes_.names.size()) {
        throw data_error(
            in.name(), name,
            fmt::format("expected rank {} [{}] (see --axes), found shape {}", axes_.names.size(),
                        fmt::join(axes_.names, ", "), shape_string(shape)));
    }
    for (std::size_t a = 0; a < shape.size(); ++a) {
        if (shape[a] == 0) {
            throw data_error(in.name(), name,
                             fmt::format("axis {} ({}) has length 0", a, axes_.names[a]));
        }
    }
    VectorShape s;
    s.batch = axes_.has_batch() ? shape[axes_.index("batch")] : 1;
    s.pos = shape[axes_.index("pos")];
    s.heads = shape[axes_.index("head")];
    s.dim = shape[axes_.index("dim")];
    // A declared extent costs nothing in HDF5 (chunks never written read as fill values), but a
    // schedule and per-vector buffers are sized by it: refuse what no attention head has.
    if (s.dim > kMaxHeadDim) {
        throw data_error(in.name(), name,
                         fmt::format("dim axis of length {}: expected a head of at most {} dims",
                                     s.dim, kMaxHeadDim));
    }
    return s;
}

namespace {
// Patterns follow the batch axis of --axes; a pattern of the other rank names the --axes that fit.
std::string pattern_axes_hint(std::size_t rank, bool batched) {
    if (batched && rank == 3)
        return " (saved as [head, query_pos, key_pos]? pass --axes pos,head,dim)";
    if (!batched && rank == 4) return " (saved with a batch axis? pass --axes batch,pos,head,dim)";
    return "";
}
}  // namespace

VectorShape DumpReader::vector_shape(std::size_t layer, Hook hook) const {
    const std::string name = dataset(layer, hook);
    VectorShape total = shard_vector_shape(input(), name);
    for (std::size_t i = 1; i < shards_.size(); ++i) {
        const VectorShape s = shard_vector_shape(*shards_[i], name);
        if (s.pos != total.pos || s.heads != total.heads || s.dim != total.dim) {
            throw data_error(shards_[i]->name(), name,
                             fmt::format("{} positions, {} heads, {} dims, but {} has {}, {}, {} "
                                         "(shards of one dump must agree)",
                                         s.pos, s.heads, s.dim, input().name(), total.pos,
                                         total.heads, total.dim));
        }
        total.batch += s.batch;
    }
    total.batch = restricted_batch(total.batch);
    return total;
}

PatternShape DumpReader::shard_pattern_shape(const H5Input& in, const std::string& name) const {
    const Shape shape = in.info(name).shape;
    const bool batched = axes_.has_batch();
    const std::size_t rank = batched ? 4 : 3;
    if (shape.size() != rank) {
        throw data_error(
            in.name(), name,
            fmt::format("expected rank {} [{}head, query_pos, key_pos], found shape {}{}", rank,
                        batched ? "batch, " : "", shape_string(shape),
                        pattern_axes_hint(shape.size(), batched)));
    }
    PatternShape s;
    s.batch = batched ? shape[0] : 1;
    s.heads = shape[rank - 3];
    s.queries = shape[rank - 2];
    s.keys = shape[rank - 1];
    if (s.batch == 0 || s.heads == 0 || s.queries == 0 || s.keys == 0) {
        throw data_error(in.name(), name, "has a zero-length axis " + shape_string(shape));
    }
    if (s.keys < s.queries) {
        throw data_error(in.name(), name,
                         fmt::format("{} queries but only {} keys (expected key_pos >= query_pos)",
                                     s.queries, s.keys));
    }
    return s;
}

PatternShape DumpReader::pattern_shape(std::size_t layer, Hook hook) const {
    const std::string name = dataset(layer, hook);
    PatternShape total = shard_pattern_shape(input(), name);
    for (std::size_t i = 1; i < shards_.size(); ++i) {
        const PatternShape s = shard_pattern_shape(*shards_[i], name);
        if (s.heads != total.heads || s.queries != total.queries || s.keys != total.keys) {
            throw data_error(shards_[i]->name(), name,
                             fmt::format("{} heads, {} queries, {} keys, but {} has {}, {}, {} "
                                         "(shards of one dump must agree)",
                                         s.heads, s.queries, s.keys, input().name(), total.heads,
                                         total.queries, total.keys));
        }
        total.batch += s.batch;
    }
    total.batch = restricted_batch(total.batch);
    return total;
}

void DumpReader::restrict_sequences(std::size_t first, std::size_t count) {
    first_sequence_ = first;
    sequence_count_ = count;
}

std::size_t DumpReader::restricted_batch(std::size_t batch) const {
    return batch > first_sequence_ ? std::min(sequence_count_, batch - first_sequence_) : 0;
}

std::pair<const H5Input*, std::size_t> DumpReader::locate(const std::string& name,
                                                          std::size_t batch) const {
    batch += first_sequence_;
    if (shards_.size() == 1) return {shards_.front(), batch};
    for (const H5Input* shard : shards_) {
        const std::size_t n = axes_.has_batch() ? shard->info(name).shape[axes_.index("batch")] : 1;
        if (batch < n) return {shard, batch};
        batch -= n;
    }
    throw data_error(input().name(), name, "sequence index beyond the last shard");
}

std::size_t DumpReader::check_query_key(std::size_t layer, Hook q, Hook k) const {
    const VectorShape qs = vector_shape(layer, q), ks = vector_shape(layer, k);
    const std::string kname = dataset(layer, k), qname = dataset(layer, q);
    if (qs.batch != ks.batch || qs.pos != ks.pos) {
        throw data_error(input().name(), kname,
                         fmt::format("{} sequences of {} positions, but {} has {} of {}", ks.batch,
                                     ks.pos, qname, qs.batch, qs.pos));
    }
    if (qs.dim != ks.dim) {
        throw data_error(input().name(), kname,
                         fmt::format("head_dim {} differs from {}'s {}", ks.dim, qname, qs.dim));
    }
    if (qs.heads % ks.heads != 0) {
        throw data_error(input().name(), kname,
                         fmt::format("{} kv heads do not divide the {} query heads of {}", ks.heads,
                                     qs.heads, qname));
    }
    return qs.heads / ks.heads;
}

std::string DumpReader::frequency_source() const {
    if (theta_override_) return "";
    if (attributes_.layer_rope_inv_freq) return "layer_rope_inv_freq";
    return attributes_.rope_inv_freq ? "rope_inv_freq" : "";
}

Schedule DumpReader::schedule(std::size_t layer, std::size_t head_dim, bool need_theta) const {
    if (head_dim % 2 != 0) {
        throw data_error(input().name(), "",
                         fmt::format("head_dim {} is odd; RoPE pairs dims", head_dim));
    }
    std::optional<std::vector<double>> stored =
        theta_override_ ? std::nullopt : stored_frequencies(attributes_, layer, input().name());
    const std::size_t rotary = stored && !attributes_.rotary_dim
                                   ? 2 * stored->size()
                                   : attributes_.rotary_dim.value_or(head_dim);
    if (rotary > head_dim || rotary % 2 != 0 || rotary == 0) {
        throw data_error(input().name(), "/@rotary_dim",
                         fmt::format("rotary_dim {} does not fit head_dim {} (even, 2..head_dim)",
                                     rotary, head_dim));
    }
    if (stored && 2 * stored->size() != rotary) {
        throw data_error(
            input().name(),
            attributes_.layer_rope_inv_freq ? "/@layer_rope_inv_freq" : "/@rope_inv_freq",
            fmt::format("{} frequencies per layer, but rotary_dim {} needs {} (or "
                        "pass --theta)",
                        stored->size(), rotary, rotary / 2));
    }
    const Layout layout = attributes_.rope_layout.value_or(Layout::half);
    Schedule s;
    s.head_dim = head_dim;
    s.rotary_dim = rotary;
    s.layout = layout;
    if (stored) {
        s.inv_freq = std::move(*stored);
        return s;
    }
    if (attributes_.rope_theta)
        return make_schedule(head_dim, *attributes_.rope_theta, layout, rotary);
    if (need_theta && attributes_.unreadable_rope_theta) {
        throw data_error(input().name(), "/@rope_theta",
                         fmt::format("expected a number, found '{}' (or pass --theta)",
                                     *attributes_.unreadable_rope_theta));
    }
    if (need_theta) {
        throw usage_error(input().name() +
                          " has no rope_theta attribute: pass --theta (e.g. 10000)");
    }
    return s;
}

std::optional<SequenceInPlace> DumpReader::sequence_in_place(std::size_t layer, Hook hook,
                                                             std::size_t batch) const {
    const std::vector<std::string> batch_first{"batch", "pos", "head", "dim"};
    const std::vector<std::string> no_batch{"pos", "head", "dim"};
    if (axes_.names != batch_first && axes_.names != no_batch) return std::nullopt;
    const std::string name = dataset(layer, hook);
    const auto [in, local] = locate(name, batch);
    auto [entry, added] = storage_cache_.try_emplace({in, name});
    ShardStorage& shard = entry->second;
    if (added) {
        shard.storage = in->contiguous_storage(name);
        const std::size_t stored = shard_vector_shape(*in, name).batch;
        if (shard.storage)
            shard.per_sequence = shard.storage->bytes / std::max<std::size_t>(stored, 1);
    }
    if (!shard.storage) return std::nullopt;
    return SequenceInPlace{in->path(), in->name(),
                           shard.storage->offset + local * shard.per_sequence, shard.per_sequence,
                           shard.storage->dtype};
}

void DumpReader::read_vectors(std::size_t layer, Hook hook, std::size_t batch,
                              Tensor<float>& out) const {
    const std::string name = dataset(layer, hook);
    const auto [in, local] = locate(name, batch);
    const VectorShape s = shard_vector_shape(*in, name);
    const Shape full = in->info(name).shape;
    Shape start(full.size(), 0), count = full;
    if (axes_.has_batch()) {
        start[axes_.index("batch")] = local;
        count[axes_.index("batch")] = 1;
    }
    out.shape = {s.pos, s.heads, s.dim};
    out.data.resize(s.pos * s.heads * s.dim);
    // Stored order without the batch axis, e.g. {pos, head, dim} or {head, pos, dim}.
    std::vector<std::string> stored;
    for (const auto& a : axes_.names)
        if (a != "batch") stored.push_back(a);
    if (stored == std::vector<std::string>{"pos", "head", "dim"}) {
        in->read_slab(name, start, count, out.ptr());
    } else {
        std::vector<float> raw(out.size());
        in->read_slab(name, start, count, raw.data());
        std::size_t extent[3], stride[3];  // of stored axes, and their strides in `out`
        for (std::size_t i = 0; i < 3; ++i) {
            extent[i] = stored[i] == "pos" ? s.pos : stored[i] == "head" ? s.heads : s.dim;
            stride[i] = stored[i] == "pos" ? s.heads * s.dim : stored[i] == "head" ? s.dim : 1;
        }
        std::size_t r = 0;
        for (std::size_t a = 0; a < extent[0]; ++a)
            for (std::size_t b = 0; b < extent[1]; ++b)
                for (std::size_t c = 0; c < extent[2]; ++c)
                    out.data[a * stride[0] + b * stride[1] + c * stride[2]] = raw[r++];
    }
    const float* p = out.ptr();
    if (all_finite(p, out.size())) return;
    // f64 values beyond the float range arrive as inf: ropekit computes from float32 vectors.
    const bool wide = in->info(name).dtype == DType::f64;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (!std::isfinite(p[i])) {
            const std::size_t pos = i / (s.heads * s.dim), head = i / s.dim % s.heads;
            throw data_error(in->name(), name,
                             fmt::format("{} at batch {}, pos {}, head {}, dim {}",
                                         std::isnan(p[i]) ? "NaN"
                                         : wide ? "inf or a value beyond the float32 range "
                                                  "(3.4e38)"
                                                : "inf",
                                         local, pos, head, i % s.dim));
        }
    }
}

void DumpReader::read_pattern(std::size_t layer, Hook hook, std::size_t batch, std::size_t head,
                              Tensor<float>& out) const {
    const std::string name = dataset(layer, hook);
    const auto [in, local] = locate(name, batch);
    const PatternShape s = shard_pattern_shape(*in, name);
    out.shape = {s.queries, s.keys};
    out.data.resize(s.queries * s.keys);
    if (axes_.has_batch()) {
        in->read_slab(name, {local, head, 0, 0}, {1, 1, s.queries, s.keys}, out.ptr());
    } else {
        in->read_slab(name, {head, 0, 0}, {1, s.queries, s.keys}, out.ptr());
    }
    const std::size_t offset = s.keys - s.queries;
    for (std::size_t i = 0; i < s.queries; ++i) {
        for (std::size_t j = 0; j <= offset + i; ++j) {
            const float v = out.data[i * s.keys + j];
            if (!std::isfinite(v)) {
                throw data_error(in->name(), name,
                                 fmt::format("{} at batch {}, head {}, query {}, key {}",
                                             std::isnan(v) ? "NaN" : "inf", local, head, i, j));
            }
        }
    }
}

}  // namespace ropekit
