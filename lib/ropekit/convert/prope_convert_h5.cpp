// prope-convert for HDF5: an activation dump (post-RoPE q/k re-rotated under p-RoPE, attention
// recomputed from them) or a frequency table.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/attention.hpp"

namespace ropekit {

namespace {

// Writes sequence `batch` of a vector hook, given as [pos, head, dim], in the file's own axis
// order (the inverse of DumpReader::read_vectors).
void write_vectors(H5Output& out, const std::string& name, const VectorAxes& axes,
                   std::size_t batch, const Tensor<float>& v) {
    const std::size_t T = v.shape[0], H = v.shape[1], D = v.shape[2];
    Shape start, count;
    for (const std::string& a : axes.names) {
        start.push_back(a == "batch" ? batch : 0);
        count.push_back(a == "batch" ? 1 : a == "pos" ? T : a == "head" ? H : D);
    }
    std::vector<std::size_t> stride(axes.names.size());  // of each stored axis in the slab
    for (std::size_t i = axes.names.size(), s = 1; i-- > 0;) {
        stride[i] = s;
        s *= count[i];
    }
    const auto at = [&](const char* axis) { return stride[axes.index(axis)]; };
    const std::size_t sp = at("pos"), sh = at("head"), sd = at("dim");
    std::vector<float> slab(v.size());
    for (std::size_t t = 0; t < T; ++t)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t d = 0; d < D; ++d)
                slab[t * sp + h * sh + d * sd] = v.data[(t * H + h) * D + d];
    out.write_slab(name, start, count, slab.data());
}

void write_table(const H5Input& in, const std::string& output, const ConvertOptions& options,
                 ConvertReport& report) {
    const PropeRequest& request = options.request;
    std::vector<double> table;
    std::optional<std::string> unreadable_theta;
    std::optional<double> theta = read_rope_theta(in, unreadable_theta);
    if (in.has("inv_freq")) {
        const Tensor<double> t = in.read_double("inv_freq");
        if (t.rank() != 1) throw data_error(in.name(), "inv_freq", "expected one axis [frequency]");
        table = t.data;
        if (request.theta) table = default_inv_freq(2 * table.size(), *request.theta);
    } else {
        const DumpAttributes attrs = read_dump_attributes(in);
        const auto dim = attrs.rotary_dim
                             ? std::optional<double>(static_cast<double>(*attrs.rotary_dim))
                             : in.attr_double("/", "head_dim");
        if (!theta || !dim) {
            throw data_error(in.name(), "/",
                             "neither an inv_freq dataset, post-RoPE hooks, nor rope_theta and "
                             "rotary_dim (or head_dim) attributes");
        }
        table = default_inv_freq(static_cast<std::size_t>(*dim), request.theta.value_or(*theta));
    }
    if (request.theta) theta = request.theta;
    const std::vector<double> target = apply_prope(table, request.p, request.reverse);
    report.kept = {describe_kept(target)};
    H5Output out = H5Output::create(output, WriteOptions{options.force, {in.path()}});
    Tensor<double> t(Shape{target.size()});
    t.data = target;
    out.write("inv_freq", t, {"frequency"}, "rad/token");
    if (theta) out.set_attr("/", "rope_theta", *theta);
    out.set_attr("/", "p", request.p);
    out.set_attr("/", "rope_reverse", static_cast<std::int64_t>(request.reverse));
    out.commit(options.tool, options.command_line, in.history());
}

// Copies a dataset, streaming floating-point data one index of its first axis at a time.
void copy_dataset(const H5Input& in, H5Output& out, const std::string& name) {
    std::optional<DatasetInfo> info;
    try {
        info = in.info(name);
    } catch (const Error&) {
        out.write(name, in.read_int64(name));  // token ids and other integers are small
        return;
    }
    const Shape& shape = info->shape;
    if (shape.size() < 2) {
        out.write(name, in.read_float(name), {}, "", info->dtype);
        return;
    }
    std::vector<std::string> axes;
    const std::regex vector_hook(R"(blocks\.\d+\.attn\.hook_(q|k|v|z|rot_q|rot_k))");
    if (shape.size() == 4 && std::regex_match(name, vector_hook)) axes = hook_axes(Hook::q);
    out.create_dataset(name, shape, info->dtype, axes);
    Shape start(shape.size(), 0), count = shape;
    count[0] = 1;
    std::vector<float> slab(element_count(count));
    for (std::size_t i = 0; i < shape[0]; ++i) {
        start[0] = i;
        in.read_slab(name, start, count, slab.data());
        out.write_slab(name, start, count, slab.data());
    }
}

// The dump's own schedule (possibly already p-RoPE), and the one to re-rotate with.
struct Rerotation {
    std::size_t head_dim = 0;
    Schedule original, target;
};

Rerotation rerotation(const H5Input& in, const DumpReader& reader, const DumpAttributes& attrs,
                      std::size_t first_layer, const PropeRequest& request) {
    if (!attrs.rope_theta) {
        throw data_error(in.name(), "/@rope_theta",
                         "missing (needed to un-rotate the post-RoPE hooks)");
    }
    Rerotation r;
    r.head_dim = reader.vector_shape(first_layer, Hook::rot_q).dim;
    // Recorded frequencies already include the dump's p (and --reverse, and any scaling).
    r.original = reader.schedule(first_layer, r.head_dim, true);
    const bool recorded = attrs.rope_inv_freq || attrs.layer_rope_inv_freq;
    if (attrs.p && !recorded) r.original = apply_prope(r.original, *attrs.p);
    if (const auto& table = attrs.layer_rope_inv_freq) {
        const std::size_t width = table->shape[1];
        for (std::size_t i = width; i < table->size(); ++i) {
            if (table->data[i] != table->data[i % width]) {
                throw data_error(in.name(), "/@layer_rope_inv_freq",
                                 fmt::format("layer {} has other frequencies than layer 0: "
                                             "re-rotating a dump with a schedule per layer is not "
                                             "supported",
                                             i / width));
            }
        }
    }
    Schedule base = r.original;
    base.inv_freq =
        default_inv_freq(r.original.rotary_dim, request.theta.value_or(*attrs.rope_theta));
    r.target = apply_prope(base, request.p, request.reverse);
    return r;
}

// One layer's post-RoPE hooks and the attention datasets recomputed from them.
struct LayerHooks {
    std::size_t layer = 0;
    std::string q, k;  // dataset names
    std::size_t sequences = 0, tokens = 0, heads = 0, kv_heads = 0, group = 1;
    std::vector<std::pair<Hook, std::string>> attention;  // scores and/or pattern
};

// The layer's q/k hooks, checked against each other and the first layer's head_dim.
LayerHooks vector_hooks(const H5Input& in, const DumpReader& reader, std::size_t layer,
                        std::size_t head_dim, bool batched) {
    if (!reader.has(layer, Hook::rot_k)) {
        throw data_error(in.name(), reader.dataset(layer, Hook::rot_k),
                         "missing (hook_rot_q has no keys)");
    }
    LayerHooks hooks;
    hooks.layer = layer;
    hooks.group = reader.check_query_key(layer, Hook::rot_q, Hook::rot_k);
    const VectorShape qs = reader.vector_shape(layer, Hook::rot_q);
    hooks.sequences = batched ? qs.batch : 1;
    hooks.tokens = qs.pos;
    hooks.heads = qs.heads;
    hooks.kv_heads = reader.vector_shape(layer, Hook::rot_k).heads;
    hooks.q = reader.dataset(layer, Hook::rot_q);
    hooks.k = reader.dataset(layer, Hook::rot_k);
    if (qs.dim != head_dim) throw data_error(in.name(), hooks.q, "head_dim differs between layers");
    return hooks;
}

// The layer's attention hooks, which must hold one [T, T] matrix per query head.
void add_attention_hooks(const H5Input& in, const DumpReader& reader, bool batched,
                         LayerHooks& hooks) {
    for (Hook hook : {Hook::scores, Hook::pattern}) {
        if (!reader.has(hooks.layer, hook)) continue;
        const std::string name = reader.dataset(hooks.layer, hook);
        const PatternShape ps = reader.pattern_shape(hooks.layer, hook);
        if (ps.heads != hooks.heads || ps.queries != hooks.tokens || ps.keys != hooks.tokens ||
            (batched && ps.batch != hooks.sequences)) {
            throw data_error(
                in.name(), name,
                "expected one [query_pos, key_pos] matrix per head matching the queries");
        }
        hooks.attention.emplace_back(hook, name);
    }
}

// The output datasets of a layer's hooks, shaped and typed as in the input.
void create_layer_datasets(const H5Input& in, H5Output& out, const LayerHooks& hooks,
                           const VectorAxes& axes) {
    for (const std::string& name : {hooks.q, hooks.k}) {
        out.create_dataset(name, in.info(name).shape, in.info(name).dtype, axes.names,
                           "activation");
    }
    std::vector<std::string> pattern_axes = hook_axes(Hook::pattern);
    if (!axes.has_batch()) pattern_axes.erase(pattern_axes.begin());
    for (const auto& [hook, name] : hooks.attention) {
        out.create_dataset(name, in.info(name).shape, in.info(name).dtype, pattern_axes,
                           hook == Hook::scores
                               ? "logit (scaled by 1/sqrt(d_head); -inf above the diagonal)"
                               : "probability");
    }
}

// Every [pos, head, dim] row of sequence `batch` of `dataset`: un-rotated by the original
// schedule, rotated by the target. A chunk beyond the float range once re-rotated (values near
// 3.4e38) cannot be stored: an error naming where.
void rerotate(Tensor<float>& v, const Rerotation& r, const std::string& file,
              const std::string& dataset, std::size_t batch) {
    const std::size_t T = v.shape[0], heads = v.shape[1], D = r.head_dim;
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t h = 0; h < heads; ++h) {
            float* x = &v.data[(t * heads + h) * D];
            unrotate(x, r.original, static_cast<double>(t));
            rotate(x, r.target, static_cast<double>(t));
        }
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v.data[i])) {
            throw data_error(file, dataset,
                             fmt::format("re-rotating batch {}, pos {}, head {} overflows float32 "
                                         "(a chunk norm above 3.4e38)",
                                         batch, i / (heads * D), i / D % heads));
        }
    }
}

// One head of one sequence: its q and k rows, and where its [T, T] matrices go.
struct HeadSlice {
    const float* q;
    std::size_t q_stride;
    const float* k;
    std::size_t k_stride;
    Shape start, count;
    std::size_t batch, head;
};

// One head's recomputed scores and pattern. Float SGEMM when no score can overflow, as before;
// otherwise the scores are computed in double (the pattern is then exact), and a score beyond
// the float range is an error naming where.
void write_head_attention(H5Output& out, const LayerHooks& hooks, const HeadSlice& head,
                          std::size_t D, const std::string& file, std::vector<float>& s) {
    const std::size_t T = hooks.tokens;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    if (float_scores_fit(head.q, head.q_stride, head.k, head.k_stride, T, D, scale)) {
        causal_scores(head.q, head.q_stride, head.k, head.k_stride, T, D, static_cast<float>(scale),
                      s.data());
        for (const auto& [hook, name] : hooks.attention) {
            if (hook == Hook::pattern) causal_softmax(s.data(), T);
            out.write_slab(name, head.start, head.count, s.data());
        }
        return;
    }
    std::vector<double> wide(T * T);
    causal_scores_f64(head.q, head.q_stride, head.k, head.k_stride, T, D, scale, wide.data());
    for (const auto& [hook, name] : hooks.attention) {
        if (hook == Hook::pattern) {
            causal_softmax_f64(wide.data(), T, s.data());
        } else {
            for (std::size_t i = 0; i < T * T; ++i) {
                if (std::isfinite(wide[i]) &&
                    std::abs(wide[i]) > std::numeric_limits<float>::max()) {
                    throw data_error(file, name,
                                     fmt::format("recomputed score {:.3g} at batch {}, head {}, "
                                                 "query {}, key {} does not fit float32",
                                                 wide[i], head.batch, head.head, i / T, i % T));
                }
                s[i] = static_cast<float>(wide[i]);
            }
        }
        out.write_slab(name, head.start, head.count, s.data());
    }
}

// Sequence b's attention hooks recomputed from its re-rotated q and k, head by head.
void write_attention(H5Output& out, const LayerHooks& hooks, bool batched, std::size_t b,
                     const Tensor<float>& q, const Tensor<float>& k, std::size_t D,
                     const std::string& file) {
    const std::size_t T = hooks.tokens, H = hooks.heads;
    std::vector<float> s(T * T);
    for (std::size_t h = 0; h < H; ++h) {
        const HeadSlice head{&q.data[h * D],
                             H * D,
                             &k.data[(h / hooks.group) * D],
                             hooks.kv_heads * D,
                             batched ? Shape{b, h, 0, 0} : Shape{h, 0, 0},
                             batched ? Shape{1, 1, T, T} : Shape{1, T, T},
                             b,
                             h};
        write_head_attention(out, hooks, head, D, file, s);
    }
}

// One sequence of one layer in memory at a time: q and k re-rotated, attention recomputed.
void convert_layer(const DumpReader& reader, H5Output& out, const LayerHooks& hooks,
                   const Rerotation& rotation, const VectorAxes& axes) {
    Tensor<float> q, k;
    for (std::size_t b = 0; b < hooks.sequences; ++b) {
        reader.read_vectors(hooks.layer, Hook::rot_q, b, q);
        reader.read_vectors(hooks.layer, Hook::rot_k, b, k);
        const std::string& file = reader.input().name();
        rerotate(q, rotation, file, hooks.q, b);
        rerotate(k, rotation, file, hooks.k, b);
        write_vectors(out, hooks.q, axes, b, q);
        write_vectors(out, hooks.k, axes, b, k);
        if (!hooks.attention.empty()) {
            write_attention(out, hooks, axes.has_batch(), b, q, k, rotation.head_dim, file);
        }
    }
}

// The dump attributes under the new encoding. Descriptive attributes stay true; perplexity and
// mean_nll were measured under the old RoPE and are left out.
void write_converted_attributes(const H5Input& in, H5Output& out, DumpAttributes attrs,
                                const PropeRequest& request, const Schedule& target) {
    attrs.p = request.p;
    if (request.theta) attrs.rope_theta = request.theta;
    write_dump_attributes(out, attrs);
    out.set_attr("/", "rope_reverse", static_cast<std::int64_t>(request.reverse));
    out.set_attr("/", "rope_inv_freq", target.inv_freq);
    for (const char* name : {"n_layers", "n_heads", "n_kv_heads", "d_head", "d_model", "d_vocab",
                             "layers", "token_source"}) {
        if (const auto value = in.attr("/", name)) out.set_attr("/", name, *value);
    }
}

}  // namespace

ConvertReport convert_hdf5(const std::string& input, const std::string& output,
                           const ConvertOptions& options) {
    const H5Input in = H5Input::open(input);
    const DumpReader reader(in, options.names, options.axes, options.overrides);
    ConvertReport report;
    const std::vector<std::size_t> layers = reader.layers(Hook::rot_q);
    if (layers.empty()) {
        write_table(in, output, options, report);
        return report;
    }
    const DumpAttributes attrs = reader.attributes();
    const Rerotation rotation = rerotation(in, reader, attrs, layers.front(), options.request);
    report.kept = {describe_kept(rotation.target.inv_freq)};

    H5Output out = H5Output::create(output, WriteOptions{options.force, {in.path()}});
    const bool batched = options.axes.has_batch();
    std::set<std::string> done;
    for (std::size_t layer : layers) {
        options.note(fmt::format("layer {}: re-rotating q/k and recomputing attention", layer));
        LayerHooks hooks = vector_hooks(in, reader, layer, rotation.head_dim, batched);
        add_attention_hooks(in, reader, batched, hooks);
        create_layer_datasets(in, out, hooks, options.axes);
        convert_layer(reader, out, hooks, rotation, options.axes);
        done.insert({hooks.q, hooks.k});
        for (const auto& item : hooks.attention) done.insert(item.second);
    }
    // Everything else (pre-RoPE hooks, tokens, per-token losses) is carried over unchanged.
    for (const std::string& name : in.dataset_names()) {
        if (!done.count(name)) copy_dataset(in, out, name);
    }
    write_converted_attributes(in, out, attrs, options.request, rotation.target);
    out.commit(options.tool, options.command_line, in.history());
    return report;
}

}  // namespace ropekit
