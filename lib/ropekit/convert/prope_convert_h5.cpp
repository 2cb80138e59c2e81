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

// Sequence `batch` of a post-RoPE hook ([pos, head, dim]) taken from the dump's schedule to the
// target one. A chunk beyond the float range once re-rotated (values near 3.4e38) cannot be
// stored: an error naming where.
void rerotate(Tensor<float>& v, const Schedule& from, const Schedule& to, const std::string& file,
              const std::string& dataset, std::size_t batch) {
    const std::size_t T = v.shape[0], heads = v.shape[1], D = v.shape[2];
    for (std::size_t t = 0; t < T; ++t) {
        for (std::size_t h = 0; h < heads; ++h) {
            float* x = &v.data[(t * heads + h) * D];
            unrotate(x, from, static_cast<double>(t));
            rotate(x, to, static_cast<double>(t));
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

// The attention hooks recomputed from the re-rotated q and k: scores (if any) before pattern.
struct RecomputedAttention {
    std::vector<std::pair<Hook, std::string>> hooks;
    bool batched = true;
    std::string file;
};

// Writes one head's recomputed scores and pattern. Float SGEMM when no score can overflow, as
// before; otherwise the scores are computed in double (the pattern is then exact), and a score
// beyond the float range is an error naming where.
void write_head_attention(H5Output& out, const RecomputedAttention& a, const Tensor<float>& q,
                          const Tensor<float>& k, std::size_t group, std::size_t batch,
                          std::size_t head, std::vector<float>& s) {
    const std::size_t T = q.shape[0], H = q.shape[1], D = q.shape[2], KV = k.shape[1];
    const float* qh = &q.data[head * D];
    const float* kh = &k.data[(head / group) * D];
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    const Shape start = a.batched ? Shape{batch, head, 0, 0} : Shape{head, 0, 0};
    const Shape count = a.batched ? Shape{1, 1, T, T} : Shape{1, T, T};
    if (float_scores_fit(qh, H * D, kh, KV * D, T, D, scale)) {
        causal_scores(qh, H * D, kh, KV * D, T, D, static_cast<float>(scale), s.data());
        for (const auto& [hook, name] : a.hooks) {
            if (hook == Hook::pattern) causal_softmax(s.data(), T);
            out.write_slab(name, start, count, s.data());
        }
        return;
    }
    std::vector<double> wide(T * T);
    causal_scores_f64(qh, H * D, kh, KV * D, T, D, scale, wide.data());
    for (const auto& [hook, name] : a.hooks) {
        if (hook == Hook::pattern) {
            causal_softmax_f64(wide.data(), T, s.data());
        } else {
            for (std::size_t i = 0; i < T * T; ++i) {
                if (std::isfinite(wide[i]) &&
                    std::abs(wide[i]) > std::numeric_limits<float>::max()) {
                    throw data_error(a.file, name,
                                     fmt::format("recomputed score {:.3g} at batch {}, head {}, "
                                                 "query {}, key {} does not fit float32",
                                                 wide[i], batch, head, i / T, i % T));
                }
                s[i] = static_cast<float>(wide[i]);
            }
        }
        out.write_slab(name, start, count, s.data());
    }
}

void write_table(const H5Input& in, const std::string& output, const ConvertOptions& options,
                 ConvertReport& report) {
    const PropeRequest& request = options.request;
    std::vector<double> table;
    std::optional<double> theta = in.attr_double("/", "rope_theta");
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
    const PropeRequest& request = options.request;
    DumpAttributes attrs = reader.attributes();
    if (!attrs.rope_theta) {
        throw data_error(in.name(), "/@rope_theta",
                         "missing (needed to un-rotate the post-RoPE hooks)");
    }
    const std::size_t D = reader.vector_shape(layers.front(), Hook::rot_q).dim;
    // The dump's own schedule (possibly already p-RoPE), and the one to re-rotate with.
    Schedule original = reader.schedule(D, true);
    if (attrs.p) original = apply_prope(original, *attrs.p);
    Schedule base = original;
    base.inv_freq =
        default_inv_freq(original.rotary_dim, request.theta.value_or(*attrs.rope_theta));
    const Schedule target = apply_prope(base, request.p, request.reverse);
    report.kept = {describe_kept(target.inv_freq)};

    H5Output out = H5Output::create(output, WriteOptions{options.force, {in.path()}});
    std::set<std::string> done;
    const bool batched = options.axes.has_batch();
    std::vector<std::string> pattern_axes = hook_axes(Hook::pattern);
    if (!batched) pattern_axes.erase(pattern_axes.begin());
    for (std::size_t layer : layers) {
        options.note(fmt::format("layer {}: re-rotating q/k and recomputing attention", layer));
        if (!reader.has(layer, Hook::rot_k)) {
            throw data_error(in.name(), reader.dataset(layer, Hook::rot_k),
                             "missing (hook_rot_q has no keys)");
        }
        const std::size_t group = reader.check_query_key(layer, Hook::rot_q, Hook::rot_k);
        const VectorShape qs = reader.vector_shape(layer, Hook::rot_q);
        const std::size_t B = batched ? qs.batch : 1, T = qs.pos, H = qs.heads;
        if (qs.dim != D)
            throw data_error(in.name(), reader.dataset(layer, Hook::rot_q),
                             "head_dim differs between layers");
        const std::string qn = reader.dataset(layer, Hook::rot_q),
                          kn = reader.dataset(layer, Hook::rot_k);
        out.create_dataset(qn, in.info(qn).shape, in.info(qn).dtype, options.axes.names,
                           "activation");
        out.create_dataset(kn, in.info(kn).shape, in.info(kn).dtype, options.axes.names,
                           "activation");
        std::vector<std::pair<Hook, std::string>> attention;  // recomputed from the new q/k
        for (Hook hook : {Hook::scores, Hook::pattern}) {
            if (!reader.has(layer, hook)) continue;
            const std::string name = reader.dataset(layer, hook);
            const PatternShape ps = reader.pattern_shape(layer, hook);
            if (ps.heads != H || ps.queries != T || ps.keys != T ||
                (batched && ps.batch != qs.batch)) {
                throw data_error(
                    in.name(), name,
                    "expected one [query_pos, key_pos] matrix per head matching the queries");
            }
            out.create_dataset(name, in.info(name).shape, in.info(name).dtype, pattern_axes,
                               hook == Hook::scores
                                   ? "logit (scaled by 1/sqrt(d_head); -inf above the diagonal)"
                                   : "probability");
            attention.emplace_back(hook, name);
        }
        const RecomputedAttention recomputed{attention, batched, in.name()};
        Tensor<float> q, k;
        std::vector<float> s(T * T);
        for (std::size_t b = 0; b < B; ++b) {  // one sequence of one layer in memory at a time
            reader.read_vectors(layer, Hook::rot_q, b, q);
            reader.read_vectors(layer, Hook::rot_k, b, k);
            rerotate(q, original, target, in.name(), qn, b);
            rerotate(k, original, target, in.name(), kn, b);
            write_vectors(out, qn, options.axes, b, q);
            write_vectors(out, kn, options.axes, b, k);
            for (std::size_t h = 0; h < H && !attention.empty(); ++h) {
                write_head_attention(out, recomputed, q, k, group, b, h, s);
            }
        }
        done.insert({qn, kn});
        for (const auto& item : attention) done.insert(item.second);
    }
    // Everything else (pre-RoPE hooks, tokens, per-token losses) is carried over unchanged.
    for (const std::string& name : in.dataset_names()) {
        if (!done.count(name)) copy_dataset(in, out, name);
    }
    attrs.p = request.p;
    if (request.theta) attrs.rope_theta = request.theta;
    write_dump_attributes(out, attrs);
    out.set_attr("/", "rope_reverse", static_cast<std::int64_t>(request.reverse));
    out.set_attr("/", "rope_inv_freq", target.inv_freq);
    // Descriptive attributes stay true; perplexity and mean_nll were measured under the old RoPE
    // and are left out.
    for (const char* name : {"n_layers", "n_heads", "n_kv_heads", "d_head", "d_model", "d_vocab",
                             "layers", "token_source"}) {
        if (const auto value = in.attr("/", name)) out.set_attr("/", name, *value);
    }
    out.commit(options.tool, options.command_line, in.history());
    return report;
}

}  // namespace ropekit
